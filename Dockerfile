# acme-ca server image. Build: docker build -t acme-ca .
# Run:  docker run -p 8555:8555 -p 8556:8556 -v acme-ca-data:/var/lib/acme-ca acme-ca
# (8555: ACME over HTTPS; 8556: CRLs, the CA certificate and OCSP over plain HTTP)
#
# On first start with an empty volume the server bootstraps a CA into it, root key
# included (under offline/): move that key out of the volume. For production, run
# `acme-ca init` on an offline machine and put only the ca/ directory in the volume.
FROM python:3.12-slim

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/acme-ca acme-ca \
 && install -d -m 0700 -o acme-ca -g acme-ca /var/lib/acme-ca

# The same package the README installs, with PostgreSQL (asyncpg: [store] url =
# "postgresql://...", for replicas) and PKCS#11 (python-pkcs11: [ca] intermediate_key =
# "pkcs11:...", with the token's module mounted into the container); both are wheels.
COPY pyproject.toml README.md /src/
COPY acme_ca /src/acme_ca
RUN pip install --no-cache-dir "/src[postgres,hsm]" && rm -rf /src

USER acme-ca
WORKDIR /var/lib/acme-ca
VOLUME ["/var/lib/acme-ca"]
EXPOSE 8555 8556

# /readyz: 200 while the database answers, the intermediate key signs, the CA
# certificates are 30 days or more from expiry and the background work has a holder.
# The check verifies the server's certificate against the root but not its name: with
# --hostname (docker run ... --hostname ca.example.internal) that certificate names the
# host only, not 127.0.0.1, and a name check would mark every such container unhealthy.
# SIGTERM (docker stop) finishes the work in flight within [server] shutdown_timeout
# (30 s): give `docker stop --time` more than that.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import ssl, urllib.request; c = ssl.create_default_context(cafile='/var/lib/acme-ca/ca/root-ca.crt'); c.check_hostname = False; urllib.request.urlopen('https://127.0.0.1:8555/readyz', timeout=4, context=c)"]

ENTRYPOINT ["acme-ca", "--data-dir", "/var/lib/acme-ca"]
CMD ["serve", "--listen", "0.0.0.0:8555", "--http-listen", "0.0.0.0:8556"]
