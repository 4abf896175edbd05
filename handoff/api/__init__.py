"""HTTP: parse, authorise, call a service, render."""
