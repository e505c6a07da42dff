"""gRPC glue, one module per service as the real server splits them."""
