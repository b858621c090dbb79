#!/bin/bash
# Capture OSPFv3 packets carrying an RFC 7166 authentication trailer (HMAC-SHA-256)
# from two FRR 8.4.4 ospf6d instances in private network namespaces.
#
# Usage (root): capture_ospfv3_frr.sh OUTPUT.pcap [SECONDS]
#
# Two veth links join namespaces rdv6a and rdv6b:
#   link 1 (rdv6a-b1 <-> rdv6b-a1): key chain, SA ID 5, 40-octet key  (Ks longer than L: hashed)
#   link 2 (rdv6a-b2 <-> rdv6b-a2): manual key, key-id 3, 8-octet key (Ks shorter than L: padded)
# Every process this script starts is stopped by its own PID; the namespaces (and with them
# the veths) are deleted on exit, whatever happens.
set -euo pipefail
OUT=$(readlink -f "$1"); SECS=${2:-20}
A=rdv6a; B=rdv6b
KEY1='mrkm-ospfv3-trailer-key-chain-40-octets!'
KEY2='mrkm-v3k'
D=$(mktemp -d /tmp/rdv6.XXXXXX)
CAP_PIDS=()
# ospf6d keeps state in fixed, shared files (routers.md §1.1): the high half of its sequence
# number and its graceful-restart state. Remove them afterwards only if this run created them.
STATE_FILES=(/var/run/frr/ospf6d-at-seq-no.dat /var/run/frr/ospf6d-gr.json)
NEW_STATE_FILES=()
for f in "${STATE_FILES[@]}"; do [ -e "$f" ] || NEW_STATE_FILES+=("$f"); done

cleanup() {
  set +e
  for p in "${CAP_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for ns in $A $B; do
    for d in ospf6d zebra; do
      f=$D/$ns/$d.pid
      if [ -s "$f" ]; then kill "$(cat "$f")" 2>/dev/null; fi
    done
  done
  sleep 1
  for ns in $A $B; do
    for d in ospf6d zebra; do
      f=$D/$ns/$d.pid
      if [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then kill -9 "$(cat "$f")"; fi
    done
  done
  for l in rdv6a-b1 rdv6a-b2; do ip link del "$l" 2>/dev/null; done
  ip netns del $A 2>/dev/null
  ip netns del $B 2>/dev/null
  mkdir -p /tmp/rdv6-logs; cp "$D"/*/*.log /tmp/rdv6-logs/ 2>/dev/null || true
  rm -rf "$D"
  for f in "${NEW_STATE_FILES[@]}"; do rm -f "$f"; done
}
trap cleanup EXIT

ip netns add $A; ip netns add $B
for ns in $A $B; do ip -n $ns link set lo up; done
ip link add rdv6a-b1 type veth peer name rdv6b-a1
ip link add rdv6a-b2 type veth peer name rdv6b-a2
ip link set rdv6a-b1 netns $A; ip link set rdv6a-b2 netns $A
ip link set rdv6b-a1 netns $B; ip link set rdv6b-a2 netns $B

# Fixed link-local addresses: no EUI-64/stable-privacy generation, no DAD delay.
addr() {  # ns ifname link-local global
  ip -n "$1" link set "$2" addrgenmode none
  ip -n "$1" link set "$2" up
  ip -n "$1" -6 addr add "$3"/64 dev "$2" nodad
  ip -n "$1" -6 addr add "$4"/64 dev "$2" nodad
}
addr $A rdv6a-b1 fe80::76:1a fd00:76:1::a
addr $B rdv6b-a1 fe80::76:1b fd00:76:1::b
addr $A rdv6a-b2 fe80::76:2a fd00:76:2::a
addr $B rdv6b-a2 fe80::76:2b fd00:76:2::b

write_conf() {  # ns router-id if1 if2
  mkdir -p "$D/$1"
  echo "hostname $1" > "$D/$1/zebra.conf"
  cat > "$D/$1/ospf6d.conf" <<CONF
hostname $1
key chain mrkmkc
 key 5
  key-string $KEY1
  cryptographic-algorithm hmac-sha-256
!
interface $3
 ipv6 ospf6 area 0.0.0.0
 ipv6 ospf6 network point-to-point
 ipv6 ospf6 hello-interval 1
 ipv6 ospf6 dead-interval 4
 ipv6 ospf6 retransmit-interval 1
 ipv6 ospf6 authentication keychain mrkmkc
!
interface $4
 ipv6 ospf6 area 0.0.0.0
 ipv6 ospf6 network point-to-point
 ipv6 ospf6 hello-interval 1
 ipv6 ospf6 dead-interval 4
 ipv6 ospf6 retransmit-interval 1
 ipv6 ospf6 authentication key-id 3 hash-algo hmac-sha-256 key $KEY2
!
router ospf6
 ospf6 router-id $2
!
CONF
  chown -R frr:frr "$D/$1"
}
chmod 755 "$D"
write_conf $A 10.255.76.1 rdv6a-b1 rdv6a-b2
write_conf $B 10.255.76.2 rdv6b-a1 rdv6b-a2

# Capture on A's two veths before any daemon starts, so adjacency formation is recorded.
ip netns exec $A tcpdump -i rdv6a-b1 -U -s 0 -w "$D/l1.pcap" 'ip6 proto 89' 2>"$D/tcpdump1.log" &
CAP_PIDS+=($!)
ip netns exec $A tcpdump -i rdv6a-b2 -U -s 0 -w "$D/l2.pcap" 'ip6 proto 89' 2>"$D/tcpdump2.log" &
CAP_PIDS+=($!)
sleep 1

for ns in $A $B; do
  R=$D/$ns
  for d in zebra ospf6d; do
    ip netns exec $ns /usr/lib/frr/$d -d -f "$R/$d.conf" -i "$R/$d.pid" --vty_socket "$R" -P 0 \
      -z "$R/zserv.api" --log "file:$R/$d.log"
  done
done

# Poll for Full on both links (deadline), then keep capturing for a few more seconds.
deadline=$((SECONDS + SECS))
while [ $SECONDS -lt $deadline ]; do
  n=$(vtysh --vty_socket "$D/$A" -d ospf6d -c 'show ipv6 ospf6 neighbor' 2>/dev/null | grep -c Full || true)
  [ "$n" -ge 2 ] && break
  sleep 0.5
done
vtysh --vty_socket "$D/$A" -d ospf6d -c 'show ipv6 ospf6 neighbor' || true
vtysh --vty_socket "$D/$A" -d ospf6d -c 'show ipv6 ospf6 interface rdv6a-b1' | grep -iE 'auth|drop' || true
vtysh --vty_socket "$D/$A" -d ospf6d -c 'show ipv6 ospf6 interface rdv6a-b2' | grep -iE 'auth|drop' || true
sleep 4
for p in "${CAP_PIDS[@]}"; do kill "$p"; wait "$p" || true; done
CAP_PIDS=()
mergecap -F pcap -w "$OUT" "$D/l1.pcap" "$D/l2.pcap"
echo "wrote $OUT"
