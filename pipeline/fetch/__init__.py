"""The crawler behind the fetch stage: URI schemes, direct http, yt-dlp, archives, rate limits,
atomic landing in the run directory and media verification (see pipeline/stages/fetch.py)."""
