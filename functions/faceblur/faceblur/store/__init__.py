"""Object storage: every key and name rule (`keys`), the S3 store (`s3`), the null store."""
