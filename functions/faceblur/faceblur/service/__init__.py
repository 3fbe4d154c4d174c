"""The workflows every door calls, storage included: `entry.serve` for a parsed request
(photos, videos queued as jobs), `events` for bucket notifications."""
