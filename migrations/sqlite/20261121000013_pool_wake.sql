-- A pool's Wake-on-LAN settings (JSON: broadcast, port, interface): every
-- node in the pool can be woken with them.
ALTER TABLE pools ADD COLUMN wake TEXT;

-- When the state poll (power.poll_seconds) last took the host: one replica
-- reads each BMC per round.
ALTER TABLE hosts ADD COLUMN power_polled_at TEXT;
