"""Running the service: the HTTP server, worker processes, the embedded Redis, outbound sockets."""
