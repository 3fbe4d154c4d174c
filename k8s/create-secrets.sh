#!/usr/bin/env bash
# Create (or update) every Secret faceblur needs, in the namespaces that read them.
# Values come from the environment or are generated here; none is ever written to
# the repository. Run it after OpenFaaS is installed (openfaas-fn must exist):
#
#   MINIO_ROOT_USER=admin MINIO_ROOT_PASSWORD=... k8s/create-secrets.sh
#
# Variables (each generated at random when unset):
#   MINIO_ROOT_USER, MINIO_ROOT_PASSWORD       MinIO's administrator (console login)
#   FACEBLUR_FUNCTION_S3_ACCESS_KEY, FACEBLUR_FUNCTION_S3_SECRET_KEY
#                                              the function's own MinIO key
#   FACEBLUR_PAGE_S3_ACCESS_KEY, FACEBLUR_PAGE_S3_SECRET_KEY
#                                              the page's own MinIO key (fewer rights: it
#                                              never reads originals); the bucket set-up
#                                              Job creates both users and their policies
#   FACEBLUR_FRONTEND_SECRET_KEY               Flask session/CSRF signing key
#   POSTGRES_PASSWORD                          the accounts database's password (its URL,
#                                              faceblur-database-url, is built from it)
#   FACEBLUR_INTERNAL_TOKEN                    lets the page call the function for its
#                                              signed-in person
#   FACEBLUR_WEBHOOK_TOKEN                     MinIO's bucket events carry it (Authorization:
#                                              Bearer); the function takes events only with it
#   FACEBLUR_SEAL_PUBLIC_KEY_FILE              the authority's public key (authority.pub from
#                                              `faceblur keys new`): originals are stored
#                                              sealed for it. Unset: "off", stored in clear.
#                                              Never give it the private key.
#   FACEBLUR_HOST                              the page's host name (default faceblur.test,
#                                              as in k8s/ingress.yaml)
#   FACEBLUR_TLS_CERT_FILE, FACEBLUR_TLS_KEY_FILE
#                                              the Ingress's certificate and key (PEM). Unset:
#                                              a self-signed one for FACEBLUR_HOST, which
#                                              browsers warn about (Minikube tries only).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

random_value() { od -An -N20 -tx1 /dev/urandom | tr -d ' \n'; }

minio_root_user=${MINIO_ROOT_USER:-faceblur-admin}
minio_root_password=${MINIO_ROOT_PASSWORD:-$(random_value)}
function_access_key=${FACEBLUR_FUNCTION_S3_ACCESS_KEY:-faceblur-function}
function_secret_key=${FACEBLUR_FUNCTION_S3_SECRET_KEY:-$(random_value)}
page_access_key=${FACEBLUR_PAGE_S3_ACCESS_KEY:-faceblur-page}
page_secret_key=${FACEBLUR_PAGE_S3_SECRET_KEY:-$(random_value)}
host=${FACEBLUR_HOST:-faceblur.test}
frontend_key=${FACEBLUR_FRONTEND_SECRET_KEY:-$(random_value)}
postgres_password=${POSTGRES_PASSWORD:-$(random_value)}
internal_token=${FACEBLUR_INTERNAL_TOKEN:-$(random_value)}
webhook_token=${FACEBLUR_WEBHOOK_TOKEN:-$(random_value)}
# The function's own Ed25519 audit key (it signs the head of the log of tracks shown
# through the service); its public half is printed below for `faceblur audit verify`.
if [ -n "${FACEBLUR_AUDIT_KEY_FILE:-}" ]; then
  audit_key=$(cat "$FACEBLUR_AUDIT_KEY_FILE")
else
  audit_key=$(openssl genpkey -algorithm ed25519)
fi
# k8s/postgres.yaml: user and database faceblur, Service postgres in namespace faceblur.
database_url="postgresql+psycopg://faceblur:${postgres_password}@postgres.faceblur.svc.cluster.local:5432/faceblur"
seal_public_key=off
if [ -n "${FACEBLUR_SEAL_PUBLIC_KEY_FILE:-}" ]; then
  seal_public_key=$(cat "$FACEBLUR_SEAL_PUBLIC_KEY_FILE")
  if grep -q "PRIVATE KEY" <<<"$seal_public_key"; then
    echo "FACEBLUR_SEAL_PUBLIC_KEY_FILE holds a private key: give the function authority.pub" >&2
    exit 2
  fi
fi

# MinIO refuses passwords under 8 characters; catch it here rather than in a crash loop.
for value in "$minio_root_password" "$function_secret_key" "$page_secret_key"; do
  if [ "${#value}" -lt 8 ]; then
    echo "MinIO secret keys must be at least 8 characters long" >&2
    exit 2
  fi
done

if [ "$function_access_key" = "$page_access_key" ]; then
  echo "the function and the page need different S3 access keys" >&2
  exit 2
fi

# create --dry-run | apply: creates the Secret, or updates it when it exists.
apply_secret() {
  local namespace=$1 name=$2
  shift 2
  kubectl create secret generic "$name" --namespace "$namespace" "$@" \
    --dry-run=client --output yaml | kubectl apply --filename -
}

# The Ingress's certificate: yours, or a self-signed one made here (never stored).
tls_dir=$(mktemp -d)
trap 'rm -rf "$tls_dir"' EXIT
tls_cert=${FACEBLUR_TLS_CERT_FILE:-}
tls_key=${FACEBLUR_TLS_KEY_FILE:-}
if [ -z "$tls_cert" ] || [ -z "$tls_key" ]; then
  tls_cert=$tls_dir/tls.crt tls_key=$tls_dir/tls.key
  openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 365 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" -keyout "$tls_key" -out "$tls_cert" 2>/dev/null
  echo "Self-signed certificate made for $host: browsers will warn about it." >&2
fi

kubectl apply --filename "$here/namespace.yaml"

# Namespace faceblur: MinIO, the bucket set-up Job and the frontend.
apply_secret faceblur minio-root \
  --from-literal=root-user="$minio_root_user" \
  --from-literal=root-password="$minio_root_password"
# Each S3 key pair under the file names faceblur.config reads; the Job reads both.
apply_secret faceblur faceblur-page-s3 \
  --from-literal=faceblur-s3-access-key="$page_access_key" \
  --from-literal=faceblur-s3-secret-key="$page_secret_key"
apply_secret faceblur faceblur-function-s3 \
  --from-literal=faceblur-s3-access-key="$function_access_key" \
  --from-literal=faceblur-s3-secret-key="$function_secret_key"
# The S3 key pair the page and the function once shared.
kubectl delete secret faceblur-s3 --namespace faceblur --ignore-not-found
kubectl create secret tls faceblur-tls --namespace faceblur \
  --cert "$tls_cert" --key "$tls_key" --dry-run=client --output yaml | kubectl apply --filename -
apply_secret faceblur faceblur-frontend \
  --from-literal=faceblur-frontend-secret-key="$frontend_key"
apply_secret faceblur faceblur-postgres \
  --from-literal=postgres-password="$postgres_password"
apply_secret faceblur faceblur-webhook \
  --from-literal=faceblur-webhook-token="$webhook_token"
apply_secret faceblur faceblur-accounts \
  --from-literal=faceblur-database-url="$database_url" \
  --from-literal=faceblur-internal-token="$internal_token"

# Namespace openfaas-fn: one Secret per name in stack.yml's `secrets:`; OpenFaaS
# mounts each key as /var/openfaas/secrets/<key>, so the key is the name too.
apply_secret openfaas-fn faceblur-s3-access-key \
  --from-literal=faceblur-s3-access-key="$function_access_key"
apply_secret openfaas-fn faceblur-s3-secret-key \
  --from-literal=faceblur-s3-secret-key="$function_secret_key"
apply_secret openfaas-fn faceblur-database-url \
  --from-literal=faceblur-database-url="$database_url"
apply_secret openfaas-fn faceblur-internal-token \
  --from-literal=faceblur-internal-token="$internal_token"
apply_secret openfaas-fn faceblur-webhook-token \
  --from-literal=faceblur-webhook-token="$webhook_token"
apply_secret openfaas-fn faceblur-seal-public-key \
  --from-literal=faceblur-seal-public-key="$seal_public_key"
apply_secret openfaas-fn faceblur-audit-key \
  --from-literal=faceblur-audit-key="$audit_key"

echo "The function's audit public key (faceblur audit verify s3://originals/audit/ --audit-pub FILE):"
openssl pkey -pubout <<<"$audit_key"
echo "Secrets ready. MinIO console user: $minio_root_user; its password:"
echo "  kubectl get secret minio-root -n faceblur -o jsonpath='{.data.root-password}' | base64 -d"
