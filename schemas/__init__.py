"""The API's shapes: request bodies, responses and stored records.

Every other package imports these; this package imports nothing of ours, so the OpenAPI document
generated from it is the whole contract.
"""
