#!/usr/bin/env bash
# Create (or update) every Secret faceblur needs, in the namespaces that read them.
# Values come from the environment or are generated here; none is ever written to
# the repository. Run it after OpenFaaS is installed (openfaas-fn must exist):
#
#   MINIO_ROOT_USER=admin MINIO_ROOT_PASSWORD=... k8s/create-secrets.sh
#
# Variables (each generated at random when unset):
#   MINIO_ROOT_USER, MINIO_ROOT_PASSWORD       MinIO's administrator (console login)
#   FACEBLUR_S3_ACCESS_KEY, FACEBLUR_S3_SECRET_KEY
#                                              the function's and frontend's own MinIO key,
#                                              created by the bucket set-up Job
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
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

random_value() { od -An -N20 -tx1 /dev/urandom | tr -d ' \n'; }

minio_root_user=${MINIO_ROOT_USER:-faceblur-admin}
minio_root_password=${MINIO_ROOT_PASSWORD:-$(random_value)}
access_key=${FACEBLUR_S3_ACCESS_KEY:-faceblur-app}
secret_key=${FACEBLUR_S3_SECRET_KEY:-$(random_value)}
frontend_key=${FACEBLUR_FRONTEND_SECRET_KEY:-$(random_value)}
postgres_password=${POSTGRES_PASSWORD:-$(random_value)}
internal_token=${FACEBLUR_INTERNAL_TOKEN:-$(random_value)}
webhook_token=${FACEBLUR_WEBHOOK_TOKEN:-$(random_value)}
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
for value in "$minio_root_password" "$secret_key"; do
  if [ "${#value}" -lt 8 ]; then
    echo "MinIO secret keys must be at least 8 characters long" >&2
    exit 2
  fi
done

# create --dry-run | apply: creates the Secret, or updates it when it exists.
apply_secret() {
  local namespace=$1 name=$2
  shift 2
  kubectl create secret generic "$name" --namespace "$namespace" "$@" \
    --dry-run=client --output yaml | kubectl apply --filename -
}

kubectl apply --filename "$here/namespace.yaml"

# Namespace faceblur: MinIO, the bucket set-up Job and the frontend.
apply_secret faceblur minio-root \
  --from-literal=root-user="$minio_root_user" \
  --from-literal=root-password="$minio_root_password"
apply_secret faceblur faceblur-s3 \
  --from-literal=faceblur-s3-access-key="$access_key" \
  --from-literal=faceblur-s3-secret-key="$secret_key"
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
  --from-literal=faceblur-s3-access-key="$access_key"
apply_secret openfaas-fn faceblur-s3-secret-key \
  --from-literal=faceblur-s3-secret-key="$secret_key"
apply_secret openfaas-fn faceblur-database-url \
  --from-literal=faceblur-database-url="$database_url"
apply_secret openfaas-fn faceblur-internal-token \
  --from-literal=faceblur-internal-token="$internal_token"
apply_secret openfaas-fn faceblur-webhook-token \
  --from-literal=faceblur-webhook-token="$webhook_token"
apply_secret openfaas-fn faceblur-seal-public-key \
  --from-literal=faceblur-seal-public-key="$seal_public_key"

echo "Secrets ready. MinIO console user: $minio_root_user; its password:"
echo "  kubectl get secret minio-root -n faceblur -o jsonpath='{.data.root-password}' | base64 -d"
