"""The gRPC services, one module per service as the real server splits them."""
