"""The workflows every door calls: photos, videos and bucket events, storage included."""
