"""A collector fleet: many ``binance-ws collect`` processes sharing streams through Redis alone.

The decisions are pure objects fed the time and what Redis shows (:mod:`.dedup`: which message is new;
:mod:`.lease`: which shards a member takes, keeps, hands over or watches; :mod:`.outage`: how long to
go on trying a Redis that stopped answering); :mod:`.collector` is the thin
asyncio layer that reads Redis, carries the decisions out and pumps streams into the Redis sink.
"""

from binance_ws.fleet.dedup import DedupKey, DedupState, dedup_key, key_of
from binance_ws.fleet.lease import Claim, FleetPolicy, FleetView, Lease, Release, Renew, Want, shard_of

__all__ = ["Claim", "DedupKey", "DedupState", "FleetPolicy", "FleetView", "Lease", "Release", "Renew",
           "Want", "dedup_key", "key_of", "shard_of"]
