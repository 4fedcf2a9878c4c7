# Sourced by perf/load-measure.sh and perf/load-vs-cpload.sh: the node both measure.
# write_node_config FILE ADDRESS [MANAGEMENT_ADDR:PORT]
# A map-server + map-resolver for one site [0]10.0.0.0/8 (more-specifics accepted, key load-key), registrations
# kept an hour so a long run never sees them expire, log level warning (a log line per message would be measured).
# The generator is one address standing for many ITRs, so per-source Map-Request admission is off (request_rate_per_source = 0);
# the multicast/broadcast ITR-RLOC checks and the amplification bound stay on (the generator's ITR-RLOC is its own source).
write_node_config() {
  local file=$1 address=$2 management=${3:-}
  cat > "$file" <<TOML
[node]
name = "load-node"
roles = ["map-server", "map-resolver"]
listen = ["$address"]
log_level = "warning"
request_rate_per_source = 0

[map_server]
registration_timeout = "1h"

[[site]]
name = "load"
key = "load-key"
eid_prefixes = ["[0]10.0.0.0/8"]
accept_more_specifics = true
TOML
  if [ -n "$management" ]; then printf '\n[management]\nlisten = "%s"\n' "$management" >> "$file"; fi
}
