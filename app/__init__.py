"""The HTTP edge and the command side (Falcon, esdbclient, cryptography)."""
