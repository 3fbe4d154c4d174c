// The local S3 server: s3rver (npm) keeping objects in a folder, with our credentials
// registered and, like MinIO's webhook notifications, "put" events of one bucket POSTed
// to a URL (the function's async route). Configured by environment (see s3_server.py):
//   S3RVER_ADDRESS, S3RVER_PORT, S3RVER_DIRECTORY, S3RVER_BUCKETS (comma-separated),
//   S3RVER_WEBHOOK_URL and S3RVER_WEBHOOK_BUCKET (optional), S3RVER_WEBHOOK_TOKEN (sent as
//     `Authorization: Bearer <token>`, as MinIO sends MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>),
//   S3RVER_UPLOAD_BUCKET and S3RVER_UPLOAD_ORIGIN (optional: the bucket browsers POST
//   into with presigned forms, and the one origin, the page's, allowed to),
//   FACEBLUR_S3_ACCESS_KEY, FACEBLUR_S3_SECRET_KEY
'use strict';

const S3rver = require('s3rver');
const AWSAccount = require('s3rver/lib/models/account');

const env = process.env;
const accessKey = env.FACEBLUR_S3_ACCESS_KEY;
const secretKey = env.FACEBLUR_S3_SECRET_KEY;
if (!accessKey || !secretKey || !env.S3RVER_DIRECTORY) {
  console.error('FACEBLUR_S3_ACCESS_KEY, FACEBLUR_S3_SECRET_KEY and S3RVER_DIRECTORY are required');
  process.exit(2);
}
// s3rver only knows its built-in key pair: register ours and drop that public one.
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');

const buckets = (env.S3RVER_BUCKETS || '').split(',').filter(Boolean);
// The page sends videos straight to the inbox with a presigned POST form from its own
// origin, so that bucket answers cross-origin POSTs from that origin only (one wildcard at
// most, as S3 allows: the tests' pages listen on any loopback port).
// Local only: MinIO in the cluster takes MINIO_API_CORS_ALLOW_ORIGIN instead.
const uploadOrigin = env.S3RVER_UPLOAD_ORIGIN || '';
if (env.S3RVER_UPLOAD_BUCKET && !/^https?:\/\/[A-Za-z0-9.\-\[\]:*]+$/.test(uploadOrigin)) {
  console.error('S3RVER_UPLOAD_BUCKET needs S3RVER_UPLOAD_ORIGIN, the page\'s origin');
  process.exit(2);
}
const uploadCors = `<CORSConfiguration><CORSRule>
  <AllowedOrigin>${uploadOrigin}</AllowedOrigin><AllowedMethod>POST</AllowedMethod>
  <AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>
  <MaxAgeSeconds>3000</MaxAgeSeconds>
</CORSRule></CORSConfiguration>`;
const server = new S3rver({
  address: env.S3RVER_ADDRESS || '127.0.0.1',
  port: Number(env.S3RVER_PORT || 9000),
  directory: env.S3RVER_DIRECTORY,
  silent: true,
  vhostBuckets: false,
  configureBuckets: buckets.map((name) => ({
    name,
    configs: name === env.S3RVER_UPLOAD_BUCKET ? [uploadCors] : [],
  })),
});

// MinIO URL-encodes object keys in its events (Go's url.QueryEscape); s3rver does not.
function queryEscape(text) {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%20/g, '+');
}

const webhookUrl = env.S3RVER_WEBHOOK_URL;
const webhookBucket = env.S3RVER_WEBHOOK_BUCKET;
const webhookHeaders = { 'Content-Type': 'application/json' };
if (env.S3RVER_WEBHOOK_TOKEN) {
  webhookHeaders.Authorization = `Bearer ${env.S3RVER_WEBHOOK_TOKEN}`;
}
if (webhookUrl && webhookBucket) {
  server.on('event', (event) => {
    const record = event.Records[0];
    if (record.s3.bucket.name !== webhookBucket || !record.eventName.startsWith('ObjectCreated:')) {
      return;
    }
    record.eventName = 's3:' + record.eventName;
    record.s3.object.key = queryEscape(record.s3.object.key);
    fetch(webhookUrl, {
      method: 'POST',
      headers: webhookHeaders,
      body: JSON.stringify(event),
    }).then(
      (response) => console.log(`event ${record.s3.object.key} -> ${response.status}`),
      (error) => console.error(`event ${record.s3.object.key} not delivered: ${error.message}`),
    );
  });
}

server.run().then(
  ({ address, port }) => console.log(`s3rver ready on ${address}:${port}`),
  (error) => {
    console.error(`s3rver failed to start: ${error.message}`);
    process.exit(1);
  },
);

const stop = () => server.close().then(() => process.exit(0), () => process.exit(1));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
