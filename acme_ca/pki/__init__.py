"""Keys, certificates, CSRs and the CA hierarchy. Knows nothing of ACME or storage.

The offline commands (init, intermediate renew, sign-csr, trust) use this package
alone; the server uses only its issuing half (`Issuer`), never the root key.
"""
