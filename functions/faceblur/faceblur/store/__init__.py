"""Object storage: every key and name rule (`keys`, light: the page imports it too), pair
writes (`pairs`), the S3 store (`s3`, the only module that imports the S3 SDK) and the
store that keeps nothing (`null`). Nothing is imported here, so `keys` stays cheap."""
