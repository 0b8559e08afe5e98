import os

# Tests never read a developer's own ATRIUM_HOME or .env by accident.
os.environ.pop("ATRIUM_HOME", None)
os.environ.pop("ATRIUM_DATABASE_URL", None)
os.environ.pop("ATRIUM_REDIS_URL", None)
