"""EventStoreDB's projections: the system projections, user projections in JavaScript,
and the runners that keep both going after each commit (apart from the gRPC glue in
``esdblocal.services.projections``)."""
