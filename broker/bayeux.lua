#!lua name=bayeux
-- bayeux — the broker's Redis function library. Contract: broker/API.md; keys: broker/KEYS.md.
local VERSION = 'dev'

redis.register_function('bx_version', function(keys, args) return VERSION end)
