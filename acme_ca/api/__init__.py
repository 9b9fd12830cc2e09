"""The web front end: routes, JWS checks, nonces, URLs, problem documents."""
