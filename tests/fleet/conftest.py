from tests.redis_server import redis_client, redis_cluster, redis_server

__all__ = ["redis_client", "redis_cluster", "redis_server"]
