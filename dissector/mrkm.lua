-- mrkm.lua: Wireshark/tshark Lua dissector for MRKM's G-IKEv2 (RFC 9838) payloads.
--
-- Wireshark 4.0 decrypts IKEv2 SK payloads (ikev2_decryption_table) and names
-- payload types 50/51/52, but shows their bodies only as raw "Data Payload"
-- (isakmp.datapayload) and shows exchanges 39-42 as "Unknown". This
-- post-dissector:
--   * hands UDP 848 (RFC 9838 GSA_REKEY port) and one configurable port
--     (preference mrkm.port) to the isakmp dissector;
--   * names exchanges 39-42 in the Info column and in a tree item
--     (mrkm.exchange);
--   * decodes the bodies of IDg (50), GSA (51) and KD (52) found as
--     isakmp.datapayload, including MRKM's private Security Protocol IDs
--     201 (OSPFv2 Key ID) and 202 (OSPFv3 Authentication Trailer SA ID) and
--     private INTEG transform IDs 1024-1028 (untruncated routing digests);
--   * flags malformed bodies with its own expert info (mrkm.malformed) and
--     RFC 9838 rule violations with mrkm.violation, never a Lua error.
--
-- Formats: RFC 9838 §4.2 (IDg), §4.4 (GSA), §4.5 (KD); RFC 7296 §3.3.2
-- (transforms), §3.3.5 (attributes), §3.13.1 (traffic selectors).
-- Usage: see dissector/README.md.

local mrkm = Proto("mrkm", "MRKM G-IKEv2 (RFC 9838) group key management")

---------------------------------------------------------------------------
-- Number registries (IANA IKEv2 parameters, RFC 9838 §6, MRKM private use)
---------------------------------------------------------------------------

local EXCHANGES = {
    [34] = "IKE_SA_INIT", [35] = "IKE_AUTH", [36] = "CREATE_CHILD_SA",
    [37] = "INFORMATIONAL", [39] = "GSA_AUTH", [40] = "GSA_REGISTRATION",
    [41] = "GSA_REKEY", [42] = "GSA_INBAND_REKEY", [43] = "IKE_INTERMEDIATE",
}
local GIKEV2_EXCHANGES = { [39] = true, [40] = true, [41] = true, [42] = true }

local PROTOCOLS = {
    [1] = "IKE", [2] = "AH", [3] = "ESP", [4] = "FC_ESP_HEADER",
    [5] = "FC_CT_AUTHENTICATION", [6] = "GIKE_UPDATE",
    [201] = "MRKM-OSPFv2", [202] = "MRKM-OSPFv3-trailer",
}
local GSA_PROTOCOLS = { [0] = "Group-wide policy" }
local KD_PROTOCOLS = { [0] = "Member key bag" }
for k, v in pairs(PROTOCOLS) do
    GSA_PROTOCOLS[k] = v
    KD_PROTOCOLS[k] = v
end

-- SPI sizes RFC 9838 §4.4.2 fixes (16 = IKE SPI pair), and MRKM's own.
local SPI_SIZES = { [2] = 4, [3] = 4, [6] = 16, [201] = 1, [202] = 2 }

local ID_TYPES = {
    [1] = "ID_IPV4_ADDR", [2] = "ID_FQDN", [3] = "ID_RFC822_ADDR",
    [5] = "ID_IPV6_ADDR", [9] = "ID_DER_ASN1_DN", [10] = "ID_DER_ASN1_GN",
    [11] = "ID_KEY_ID", [12] = "ID_FC_NAME", [13] = "ID_NULL",
}

local TS_TYPES = { [7] = "TS_IPV4_ADDR_RANGE", [8] = "TS_IPV6_ADDR_RANGE" }
local TS_ADDR_LEN = { [7] = 4, [8] = 16 }

local IP_PROTOCOLS = {
    [0] = "any", [1] = "ICMP", [6] = "TCP", [17] = "UDP", [47] = "GRE",
    [50] = "ESP", [51] = "AH", [58] = "ICMPv6", [89] = "OSPF", [103] = "PIM",
    [112] = "VRRP", [132] = "SCTP",
}

local TRANSFORM_TYPES = {
    [1] = "ENCR", [2] = "PRF", [3] = "INTEG", [4] = "KE", [5] = "SN",
    [13] = "KWA", [14] = "GCAUTH",
}

local TRANSFORM_IDS = {
    [1] = {
        [2] = "ENCR_DES", [3] = "ENCR_3DES", [11] = "ENCR_NULL", [12] = "ENCR_AES_CBC",
        [13] = "ENCR_AES_CTR", [14] = "ENCR_AES_CCM_8", [15] = "ENCR_AES_CCM_12",
        [16] = "ENCR_AES_CCM_16", [18] = "ENCR_AES_GCM_8", [19] = "ENCR_AES_GCM_12",
        [20] = "ENCR_AES_GCM_16", [21] = "ENCR_NULL_AUTH_AES_GMAC",
        [28] = "ENCR_CHACHA20_POLY1305", [29] = "ENCR_AES_CCM_8_IIV",
        [30] = "ENCR_AES_GCM_16_IIV", [31] = "ENCR_CHACHA20_POLY1305_IIV",
    },
    [2] = {
        [1] = "PRF_HMAC_MD5", [2] = "PRF_HMAC_SHA1", [4] = "PRF_AES128_XCBC",
        [5] = "PRF_HMAC_SHA2_256", [6] = "PRF_HMAC_SHA2_384", [7] = "PRF_HMAC_SHA2_512",
        [8] = "PRF_AES128_CMAC",
    },
    [3] = {
        [0] = "NONE", [1] = "AUTH_HMAC_MD5_96", [2] = "AUTH_HMAC_SHA1_96",
        [5] = "AUTH_AES_XCBC_96", [8] = "AUTH_AES_CMAC_96",
        [12] = "AUTH_HMAC_SHA2_256_128", [13] = "AUTH_HMAC_SHA2_384_192",
        [14] = "AUTH_HMAC_SHA2_512_256",
        [1024] = "MRKM Keyed-MD5 (RFC 2328 App. D)",
        [1025] = "MRKM HMAC-SHA1 (RFC 5709/7166, untruncated)",
        [1026] = "MRKM HMAC-SHA-256 (RFC 5709/7166, untruncated)",
        [1027] = "MRKM HMAC-SHA-384 (RFC 5709/7166, untruncated)",
        [1028] = "MRKM HMAC-SHA-512 (RFC 5709/7166, untruncated)",
    },
    [4] = {
        [14] = "MODP_2048", [15] = "MODP_3072", [16] = "MODP_4096", [19] = "ECP_256",
        [20] = "ECP_384", [21] = "ECP_521", [31] = "CURVE25519", [32] = "CURVE448",
    },
    [5] = {
        [0] = "32-bit Sequential Numbers", [1] = "Partially Transmitted 64-bit Sequential Numbers",
        [2] = "32-bit Unspecified Numbers",
    },
    [13] = {
        [1] = "KW_5649_128", [2] = "KW_5649_192", [3] = "KW_5649_256", [4] = "KW_ARX",
    },
    [14] = { [1] = "Implicit", [2] = "Digital Signature" },
}

local TRANSFORM_ATTRS = { [14] = "Key Length", [18] = "Signature Algorithm Identifier" }
local GSA_ATTRS = {
    [1] = "GSA_KEY_LIFETIME", [2] = "GSA_INITIAL_MESSAGE_ID", [3] = "GSA_NEXT_SPI",
}
local GWP_ATTRS = { [1] = "GWP_ATD", [2] = "GWP_DTD", [3] = "GWP_SENDER_ID_BITS" }
local GROUP_BAG_ATTRS = { [1] = "SA_KEY" }
local MEMBER_BAG_ATTRS = { [1] = "WRAP_KEY", [2] = "AUTH_KEY", [3] = "GM_SENDER_ID" }
local ATTR_FORMATS = { [0] = "TLV", [1] = "TV" }

local OIDS = {
    ["1.3.101.112"] = "Ed25519", ["1.3.101.113"] = "Ed448",
    ["1.2.840.10045.2.1"] = "id-ecPublicKey",
    ["1.2.840.10045.4.3.2"] = "ecdsa-with-SHA256",
    ["1.2.840.10045.4.3.3"] = "ecdsa-with-SHA384",
    ["1.2.840.10045.4.3.4"] = "ecdsa-with-SHA512",
    ["1.2.840.113549.1.1.1"] = "rsaEncryption",
    ["1.2.840.113549.1.1.10"] = "RSASSA-PSS",
    ["1.2.840.113549.1.1.11"] = "sha256WithRSAEncryption",
    ["1.2.840.113549.1.1.12"] = "sha384WithRSAEncryption",
    ["1.2.840.113549.1.1.13"] = "sha512WithRSAEncryption",
}

---------------------------------------------------------------------------
-- Fields
---------------------------------------------------------------------------

local F = {}
local function field(key, ctor, name, ...)
    F[key] = ctor("mrkm." .. key, name, ...)
end

field("exchange", ProtoField.uint8, "Exchange type", base.DEC, EXCHANGES)
field("payload", ProtoField.uint8, "G-IKEv2 payload", base.DEC,
      { [50] = "IDg", [51] = "GSA", [52] = "KD" })

-- IDg (RFC 9838 §4.2)
field("idg.type", ProtoField.uint8, "ID Type", base.DEC, ID_TYPES)
field("idg.reserved", ProtoField.bytes, "Reserved")
field("idg.data", ProtoField.bytes, "Group ID data")
field("idg.text", ProtoField.string, "Group ID (text)")
field("idg.ipv4", ProtoField.ipv4, "Group ID (IPv4)")
field("idg.ipv6", ProtoField.ipv6, "Group ID (IPv6)")

-- GSA (RFC 9838 §4.4)
field("gsa.protocol", ProtoField.uint8, "Protocol", base.DEC, GSA_PROTOCOLS)
field("gsa.spi_size", ProtoField.uint8, "SPI Size")
field("gsa.length", ProtoField.uint16, "Length")
field("gsa.reserved", ProtoField.uint8, "Reserved")
field("gsa.spi", ProtoField.bytes, "SPI")
field("gsa.routing_key_id", ProtoField.uint16,
      "Routing key identifier (OSPFv2 Key ID / OSPFv3 SA ID)")
for _, dir in ipairs({ "src", "dst" }) do
    local what = dir == "src" and "Source" or "Destination"
    field("gsa." .. dir .. ".type", ProtoField.uint8, what .. " TS Type", base.DEC, TS_TYPES)
    field("gsa." .. dir .. ".ip_protocol", ProtoField.uint8, what .. " IP Protocol ID",
          base.DEC, IP_PROTOCOLS)
    field("gsa." .. dir .. ".length", ProtoField.uint16, what .. " Selector Length")
    field("gsa." .. dir .. ".start_port", ProtoField.uint16, what .. " Start Port")
    field("gsa." .. dir .. ".end_port", ProtoField.uint16, what .. " End Port")
    field("gsa." .. dir .. ".start_ipv4", ProtoField.ipv4, what .. " Starting Address")
    field("gsa." .. dir .. ".end_ipv4", ProtoField.ipv4, what .. " Ending Address")
    field("gsa." .. dir .. ".start_ipv6", ProtoField.ipv6, what .. " Starting Address")
    field("gsa." .. dir .. ".end_ipv6", ProtoField.ipv6, what .. " Ending Address")
    field("gsa." .. dir .. ".data", ProtoField.bytes, what .. " selector data")
end
field("gsa.tf.last", ProtoField.uint8, "Last Substruc", base.DEC, { [0] = "last", [3] = "more" })
field("gsa.tf.reserved", ProtoField.uint8, "Reserved")
field("gsa.tf.length", ProtoField.uint16, "Transform Length")
field("gsa.tf.type", ProtoField.uint8, "Transform Type", base.DEC, TRANSFORM_TYPES)
field("gsa.tf.reserved2", ProtoField.uint8, "Reserved")
field("gsa.tf.id", ProtoField.uint16, "Transform ID")
field("gsa.tf.attr.type", ProtoField.uint16, "Attribute Type", base.DEC, TRANSFORM_ATTRS, 0x7fff)
field("gsa.tf.attr.format", ProtoField.uint16, "Attribute Format", base.DEC, ATTR_FORMATS, 0x8000)
field("gsa.tf.attr.length", ProtoField.uint16, "Attribute Length")
field("gsa.tf.attr.value", ProtoField.bytes, "Attribute Value")
field("gsa.tf.key_length", ProtoField.uint16, "Key Length (bits)")
field("gsa.tf.sig_alg", ProtoField.bytes, "Signature Algorithm Identifier (DER)")
field("gsa.tf.sig_alg_oid", ProtoField.string, "Signature algorithm OID")
field("gsa.attr.type", ProtoField.uint16, "GSA Attribute Type", base.DEC, GSA_ATTRS, 0x7fff)
field("gsa.attr.format", ProtoField.uint16, "Attribute Format", base.DEC, ATTR_FORMATS, 0x8000)
field("gsa.attr.length", ProtoField.uint16, "Attribute Length")
field("gsa.attr.value", ProtoField.bytes, "Attribute Value")
field("gsa.lifetime", ProtoField.uint32, "GSA_KEY_LIFETIME (seconds)")
field("gsa.initial_message_id", ProtoField.uint32, "GSA_INITIAL_MESSAGE_ID")
field("gsa.next_spi", ProtoField.bytes, "GSA_NEXT_SPI")

-- Group-wide policy (RFC 9838 §4.4.3)
field("gwp.length", ProtoField.uint16, "Length")
field("gwp.reserved", ProtoField.uint8, "Reserved")
field("gwp.attr.type", ProtoField.uint16, "GW Policy Attribute Type", base.DEC, GWP_ATTRS, 0x7fff)
field("gwp.attr.format", ProtoField.uint16, "Attribute Format", base.DEC, ATTR_FORMATS, 0x8000)
field("gwp.attr.length", ProtoField.uint16, "Attribute Length")
field("gwp.attr.value", ProtoField.bytes, "Attribute Value")
field("gwp.atd", ProtoField.uint16, "GWP_ATD, activation time delay (seconds)")
field("gwp.dtd", ProtoField.uint16, "GWP_DTD, deactivation time delay (seconds)")
field("gwp.sender_id_bits", ProtoField.uint16, "GWP_SENDER_ID_BITS")

-- KD (RFC 9838 §4.5)
field("kd.protocol", ProtoField.uint8, "Protocol", base.DEC, KD_PROTOCOLS)
field("kd.spi_size", ProtoField.uint8, "SPI Size")
field("kd.length", ProtoField.uint16, "Length")
field("kd.reserved", ProtoField.uint8, "Reserved")
field("kd.spi", ProtoField.bytes, "SPI")
field("kd.routing_key_id", ProtoField.uint16,
      "Routing key identifier (OSPFv2 Key ID / OSPFv3 SA ID)")
field("kd.attr.type", ProtoField.uint16, "Group Key Bag Attribute Type", base.DEC,
      GROUP_BAG_ATTRS, 0x7fff)
field("kd.member.attr.type", ProtoField.uint16, "Member Key Bag Attribute Type", base.DEC,
      MEMBER_BAG_ATTRS, 0x7fff)
field("kd.attr.format", ProtoField.uint16, "Attribute Format", base.DEC, ATTR_FORMATS, 0x8000)
field("kd.attr.length", ProtoField.uint16, "Attribute Length")
field("kd.attr.value", ProtoField.bytes, "Attribute Value")
field("kd.key_id", ProtoField.uint32, "Key ID")
field("kd.kwk_id", ProtoField.uint32, "KWK ID")
field("kd.wrapped", ProtoField.bytes, "Encrypted (wrapped) key")
field("kd.wrapped_len", ProtoField.uint16, "Encrypted key length (octets)")
field("kd.auth_key", ProtoField.bytes, "AUTH_KEY (DER SubjectPublicKeyInfo)")
field("kd.auth_key_oid", ProtoField.string, "AUTH_KEY algorithm OID")
field("kd.sender_id", ProtoField.bytes, "GM_SENDER_ID")

local field_list = {}
for _, f in pairs(F) do
    field_list[#field_list + 1] = f
end
mrkm.fields = field_list

local E = {
    malformed = ProtoExpert.new("mrkm.malformed", "Malformed G-IKEv2 payload body",
                                expert.group.MALFORMED, expert.severity.ERROR),
    bug = ProtoExpert.new("mrkm.bug", "Error inside mrkm.lua (please report)",
                          expert.group.MALFORMED, expert.severity.ERROR),
    violation = ProtoExpert.new("mrkm.violation", "RFC 9838 rule violated",
                                expert.group.PROTOCOL, expert.severity.WARN),
    undecrypted = ProtoExpert.new("mrkm.undecrypted",
                                  "SK payload not decrypted (no matching ikev2_decryption_table entry?)",
                                  expert.group.UNDECODED, expert.severity.NOTE),
}
mrkm.experts = { E.malformed, E.bug, E.violation, E.undecrypted }

---------------------------------------------------------------------------
-- Preferences and port registration
---------------------------------------------------------------------------

local GSA_REKEY_PORT = 848
mrkm.prefs.port = Pref.uint("Extra UDP port for G-IKEv2", 0,
                            "Also decode this UDP port as ISAKMP/IKEv2 (0 = none); UDP 848 always is")

local udp_table = DissectorTable.get("udp.port")
local isakmp = Dissector.get("isakmp")
udp_table:add(GSA_REKEY_PORT, isakmp)
local extra_port = 0

function mrkm.prefs_changed()
    local port = mrkm.prefs.port
    if port == extra_port then
        return
    end
    if extra_port ~= 0 and extra_port ~= GSA_REKEY_PORT then
        udp_table:remove(extra_port, isakmp)
    end
    if port ~= 0 then
        udp_table:add(port, isakmp)
    end
    extra_port = port
end

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local f_exchange = Field.new("isakmp.exchangetype")
local f_mjver = Field.new("isakmp.mjver")
local f_typepayload = Field.new("isakmp.typepayload")
local f_datapayload = Field.new("isakmp.datapayload")
local f_enc_data = Field.new("isakmp.enc.data")
local f_enc_decrypted = Field.new("isakmp.enc.decrypted")

-- A body being parsed: the TvbRange, and a cursor (offsets are relative to it).
local Cursor = {}
Cursor.__index = Cursor

local function cursor(range, tree)
    return setmetatable({ r = range, pos = 0, stop = range:len(), tree = tree }, Cursor)
end

function Cursor:left()
    return self.stop - self.pos
end

-- A sub-cursor over the next n octets (which the caller has checked exist).
function Cursor:sub(n)
    local c = setmetatable({ r = self.r, pos = self.pos, stop = self.pos + n, tree = self.tree },
                           Cursor)
    self.pos = self.pos + n
    return c
end

function Cursor:range(n)
    local r = self.r:range(self.pos, n)
    self.pos = self.pos + n
    return r
end

function Cursor:peek(n)
    return self.r:range(self.pos, n)
end

-- The rest of this cursor as a range (nil if empty).
function Cursor:rest()
    local n = self:left()
    if n <= 0 then
        return nil
    end
    return self:range(n)
end

local function name_of(tbl, value)
    return tbl[value] or ("Unknown (" .. tostring(value) .. ")")
end

local function malformed(tree, range, text)
    if range ~= nil then
        tree:add_tvb_expert_info(E.malformed, range, text)
    else
        tree:add_proto_expert_info(E.malformed, text)
    end
end

local function violation(item, text)
    item:add_proto_expert_info(E.violation, text)
end

-- Check that n octets remain; otherwise flag what is left as malformed.
local function need(c, tree, n, what)
    if c:left() >= n then
        return true
    end
    local rest = c:left() > 0 and c:peek(c:left()) or nil
    malformed(tree, rest, string.format("%s: need %d octets, only %d left", what, n, c:left()))
    c.pos = c.stop
    return false
end

local function hex(range)
    return tostring(range:bytes()):lower()
end

local function printable(s)
    return s:find("^[%g ]+$") ~= nil
end

-- Minimal DER reading: one TLV header at offset off of range; returns
-- (tag, value offset, value length) or nil.
local function der_header(range, off)
    local total = range:len()
    if off + 2 > total then
        return nil
    end
    local tag = range:range(off, 1):uint()
    local len = range:range(off + 1, 1):uint()
    local voff = off + 2
    if len >= 0x80 then
        local n = len - 0x80
        if n == 0 or n > 3 or voff + n > total then
            return nil
        end
        len = range:range(voff, n):uint()
        voff = voff + n
    end
    if voff + len > total then
        return nil
    end
    return tag, voff, len
end

local function oid_string(range, off, len)
    if len < 1 then
        return nil
    end
    local first = range:range(off, 1):uint()
    local parts = { tostring(math.floor(first / 40)), tostring(first % 40) }
    if first >= 80 then
        parts = { "2", tostring(first - 80) }
    end
    local value = 0
    for i = 1, len - 1 do
        local b = range:range(off + i, 1):uint()
        value = value * 128 + (b % 128)
        if b < 128 then
            parts[#parts + 1] = tostring(value)
            value = 0
        end
    end
    return table.concat(parts, ".")
end

-- The OID of a DER AlgorithmIdentifier (SEQUENCE { OID, ... }) at off.
local function algorithm_oid(range, off)
    local tag, voff = der_header(range, off)
    if tag ~= 0x30 then
        return nil
    end
    local otag, ooff, olen = der_header(range, voff)
    if otag ~= 0x06 then
        return nil
    end
    return oid_string(range, ooff, olen)
end

-- The algorithm OID of a DER SubjectPublicKeyInfo (SEQUENCE { AlgorithmIdentifier, BIT STRING }).
local function spki_oid(range)
    local tag, voff = der_header(range, 0)
    if tag ~= 0x30 then
        return nil
    end
    return algorithm_oid(range, voff)
end

local function add_oid(tree, f, range, oid)
    if oid == nil then
        violation(tree:add(f, range, "?"), "not a DER AlgorithmIdentifier")
        return
    end
    local name = OIDS[oid]
    tree:add(f, range, oid):append_text(name and (" (" .. name .. ")") or "")
end

-- MRKM's routing TEKs carry the routing key identifier as their SPI.
local function routing_key_id(tree, f, protocol, spi)
    if spi ~= nil and (protocol == 201 or protocol == 202) and spi:len() <= 2 then
        tree:add(f, spi, spi:uint()):set_generated()
    end
end

---------------------------------------------------------------------------
-- Data attributes (RFC 7296 §3.3.5)
---------------------------------------------------------------------------

-- Read one attribute header; returns (attribute tree, type, value range or
-- nil, is_tv) or nil after flagging a malformed attribute.
local function attribute(c, tree, fields, names, label)
    if not need(c, tree, 4, label .. " attribute") then
        return nil
    end
    local start = c.pos
    local word = c:peek(2):uint()
    local atype = word % 0x8000
    local is_tv = word >= 0x8000
    local vlen = is_tv and 2 or c.r:range(c.pos + 2, 2):uint()
    local whole = 4 + (is_tv and 0 or vlen)
    if c:left() < whole then
        malformed(tree, c:peek(c:left()), string.format(
            "%s attribute %d: length %d runs past the end (%d octets left)",
            label, atype, vlen, c:left() - 4))
        c.pos = c.stop
        return nil
    end
    local at = tree:add(c:peek(whole), string.format("%s: %s", label, name_of(names, atype)))
    at:add(fields.type, c:peek(2))
    at:add(fields.format, c:peek(2))
    local value
    if is_tv then
        c:range(2)
        value = c:range(2)
    else
        c:range(2)
        at:add(fields.length, c:range(2))
        value = vlen > 0 and c:range(vlen) or nil
    end
    assert(c.pos == start + whole)
    return at, atype, value, is_tv
end

---------------------------------------------------------------------------
-- IDg (RFC 9838 §4.2: the RFC 7296 §3.5 ID payload body)
---------------------------------------------------------------------------

local function dissect_idg(body, tree)
    local t = tree:add(body, "Group Identification (IDg)")
    t:add(F.payload, 50):set_generated()
    local c = cursor(body, t)
    if not need(c, t, 4, "IDg header") then
        return
    end
    local id_type = c:peek(1):uint()
    t:add(F["idg.type"], c:range(1))
    t:add(F["idg.reserved"], c:range(3))
    local data = c:rest()
    if data == nil then
        violation(t, "IDg carries no group identification data")
        return
    end
    t:add(F["idg.data"], data)
    local text
    if id_type == 1 then
        if data:len() == 4 then
            t:add(F["idg.ipv4"], data)
            text = tostring(data:ipv4())
        else
            malformed(t, data, "ID_IPV4_ADDR must be 4 octets")
        end
    elseif id_type == 5 then
        if data:len() == 16 then
            t:add(F["idg.ipv6"], data)
            text = tostring(data:ipv6())
        else
            malformed(t, data, "ID_IPV6_ADDR must be 16 octets")
        end
    elseif id_type == 2 or id_type == 3 or id_type == 11 then
        local s = data:raw()
        if printable(s) then
            t:add(F["idg.text"], data, s)
            text = s
        end
    end
    t:append_text(": " .. name_of(ID_TYPES, id_type) .. " " .. (text or hex(data)))
    return text or hex(data)
end

---------------------------------------------------------------------------
-- GSA (RFC 9838 §4.4)
---------------------------------------------------------------------------

-- One traffic selector without count header (RFC 9838 §4.4.2, RFC 7296 §3.13.1).
local function traffic_selector(c, tree, dir)
    local what = dir == "src" and "Source" or "Destination"
    if not need(c, tree, 4, what .. " traffic selector") then
        return false
    end
    local ts_type = c:peek(1):uint()
    local sel_len = c.r:range(c.pos + 2, 2):uint()
    if sel_len < 8 or c:left() < sel_len then
        malformed(tree, c:peek(c:left()), string.format(
            "%s traffic selector: Selector Length %d (%d octets left)", what, sel_len, c:left()))
        c.pos = c.stop
        return false
    end
    local p = "gsa." .. dir .. "."
    local sc = c:sub(sel_len)
    local t = tree:add(sc:peek(sel_len), what .. " Traffic Selector")
    t:add(F[p .. "type"], sc:range(1))
    t:add(F[p .. "ip_protocol"], sc:peek(1))
    local proto = sc:range(1):uint()
    t:add(F[p .. "length"], sc:range(2))
    local alen = TS_ADDR_LEN[ts_type]
    if alen == nil then
        violation(t, string.format("traffic selector type %d is not 7 (IPv4) or 8 (IPv6)", ts_type))
        local rest = sc:rest()
        if rest then
            t:add(F[p .. "data"], rest)
        end
        return true
    end
    if sel_len ~= 8 + 2 * alen then
        malformed(t, sc:peek(sc:left()), string.format(
            "%s: Selector Length %d, want %d", TS_TYPES[ts_type], sel_len, 8 + 2 * alen))
        return true
    end
    local sp, ep = sc:peek(2):uint(), sc.r:range(sc.pos + 2, 2):uint()
    t:add(F[p .. "start_port"], sc:range(2))
    t:add(F[p .. "end_port"], sc:range(2))
    local kind = alen == 4 and "ipv4" or "ipv6"
    local sa, ea = sc:range(alen), sc:range(alen)
    t:add(F[p .. "start_" .. kind], sa)
    t:add(F[p .. "end_" .. kind], ea)
    local a1 = tostring(alen == 4 and sa:ipv4() or sa:ipv6())
    local a2 = tostring(alen == 4 and ea:ipv4() or ea:ipv6())
    local ports = (sp == 0 and ep == 65535) and "any port" or
        (sp == ep and ("port " .. sp) or string.format("ports %d-%d", sp, ep))
    t:append_text(string.format(": %s%s, %s, %s", a1, a1 == a2 and "" or ("-" .. a2),
                                name_of(IP_PROTOCOLS, proto), ports))
    return true
end

local function transform_attributes(c, tree, tf_type)
    while c:left() > 0 do
        local at, atype, value, is_tv = attribute(c, tree, {
            type = F["gsa.tf.attr.type"], format = F["gsa.tf.attr.format"],
            length = F["gsa.tf.attr.length"],
        }, TRANSFORM_ATTRS, "Transform attribute")
        if at == nil then
            return
        end
        if atype == 14 then
            if is_tv then
                at:add(F["gsa.tf.key_length"], value)
                at:append_text(" = " .. value:uint() .. " bits")
            else
                violation(at, "Key Length must be TV (RFC 7296 §3.3.5)")
            end
        elseif atype == 18 then
            if is_tv or value == nil then
                violation(at, "Signature Algorithm Identifier must be a non-empty TLV")
            else
                at:add(F["gsa.tf.sig_alg"], value)
                local oid = algorithm_oid(value, 0)
                add_oid(at, F["gsa.tf.sig_alg_oid"], value, oid)
                if tf_type ~= 14 then
                    violation(at, "attribute 18 belongs to a GCAUTH transform")
                end
            end
        elseif value ~= nil then
            at:add(F["gsa.tf.attr.value"], value)
        end
    end
end

-- Transform substructures until Last Substruc 0 (RFC 9838 §4.4.2).
local function transforms(c, tree, protocol)
    while true do
        if not need(c, tree, 8, "Transform") then
            return false
        end
        local last = c:peek(1):uint()
        local tlen = c.r:range(c.pos + 2, 2):uint()
        if tlen < 8 or c:left() < tlen then
            malformed(tree, c:peek(c:left()), string.format(
                "Transform Length %d (%d octets left)", tlen, c:left()))
            c.pos = c.stop
            return false
        end
        local tc = c:sub(tlen)
        local t = tree:add(tc:peek(tlen), "Transform")
        local li = t:add(F["gsa.tf.last"], tc:range(1))
        if last ~= 0 and last ~= 3 then
            violation(li, "Last Substruc must be 0 or 3")
        end
        t:add(F["gsa.tf.reserved"], tc:range(1))
        t:add(F["gsa.tf.length"], tc:range(2))
        local ttype = tc:peek(1):uint()
        t:add(F["gsa.tf.type"], tc:range(1))
        t:add(F["gsa.tf.reserved2"], tc:range(1))
        local tid = tc:peek(2):uint()
        local names = TRANSFORM_IDS[ttype] or {}
        t:add(F["gsa.tf.id"], tc:range(2)):append_text(" (" .. name_of(names, tid) .. ")")
        t:append_text(string.format(": %s = %s", name_of(TRANSFORM_TYPES, ttype),
                                    name_of(names, tid)))
        if protocol ~= 6 and (ttype == 13 or ttype == 14) then
            violation(t, "KWA and GCAUTH transforms belong to GIKE_UPDATE policies only")
        end
        transform_attributes(tc, t, ttype)
        if last ~= 3 then
            return true
        end
    end
end

local function gsa_attributes(c, tree, protocol, summary)
    while c:left() > 0 do
        local at, atype, value, is_tv = attribute(c, tree, {
            type = F["gsa.attr.type"], format = F["gsa.attr.format"],
            length = F["gsa.attr.length"],
        }, GSA_ATTRS, "GSA attribute")
        if at == nil then
            return
        end
        if is_tv then
            violation(at, "GSA attributes are TLV (RFC 9838 §4.4.2.2)")
        end
        if value == nil then
            violation(at, "empty GSA attribute value")
        elseif atype == 1 or atype == 2 then
            local f = atype == 1 and F["gsa.lifetime"] or F["gsa.initial_message_id"]
            if value:len() == 4 then
                at:add(f, value)
                at:append_text(" = " .. value:uint())
                if atype == 1 then
                    summary[#summary + 1] = "lifetime " .. value:uint() .. " s"
                end
            else
                at:add(F["gsa.attr.value"], value)
                violation(at, GSA_ATTRS[atype] .. " must be 4 octets")
            end
            if atype == 2 and protocol ~= 6 then
                violation(at, "GSA_INITIAL_MESSAGE_ID belongs to the GIKE_UPDATE policy only")
            end
        elseif atype == 3 then
            at:add(F["gsa.next_spi"], value)
            at:append_text(" = " .. hex(value))
        else
            at:add(F["gsa.attr.value"], value)
        end
    end
end

local function gsa_policy(c, tree, protocol, counts)
    -- protocol(1) | SPI size(1) | length(2) | SPI | src TS | dst TS | transforms | attributes
    local spi_size = c.r:range(c.pos + 1, 1):uint()
    local plen = c.r:range(c.pos + 2, 2):uint()
    if plen < 4 + spi_size or c:left() < plen then
        malformed(tree, c:peek(c:left()), string.format(
            "GSA policy: Length %d (SPI Size %d, %d octets left)", plen, spi_size, c:left()))
        c.pos = c.stop
        return
    end
    local pc = c:sub(plen)
    local kind = protocol == 6 and "Rekey SA (KEK) policy" or "Data-Security SA (TEK) policy"
    local t = tree:add(pc:peek(plen), kind)
    t:add(F["gsa.protocol"], pc:range(1))
    local si = t:add(F["gsa.spi_size"], pc:range(1))
    t:add(F["gsa.length"], pc:range(2))
    local want = SPI_SIZES[protocol]
    if want ~= nil and spi_size ~= want then
        violation(si, string.format("%s SPIs are %d octets", PROTOCOLS[protocol], want))
    end
    local spi = spi_size > 0 and pc:range(spi_size) or nil
    if spi then
        t:add(F["gsa.spi"], spi)
        routing_key_id(t, F["gsa.routing_key_id"], protocol, spi)
    end
    t:append_text(string.format(": %s SPI %s", name_of(PROTOCOLS, protocol),
                                spi and hex(spi) or "(none)"))
    counts[protocol == 6 and "kek" or "tek"] = counts[protocol == 6 and "kek" or "tek"] + 1
    if not traffic_selector(pc, t, "src") or not traffic_selector(pc, t, "dst") then
        return
    end
    if not transforms(pc, t, protocol) then
        return
    end
    local summary = {}
    gsa_attributes(pc, t, protocol, summary)
    if #summary > 0 then
        t:append_text(", " .. table.concat(summary, ", "))
    end
end

local function group_wide_policy(c, tree, counts)
    -- protocol 0 (1) | RESERVED (1) | length (2) | TV attributes
    local plen = c.r:range(c.pos + 2, 2):uint()
    if plen < 4 or c:left() < plen then
        malformed(tree, c:peek(c:left()), string.format(
            "group-wide policy: Length %d (%d octets left)", plen, c:left()))
        c.pos = c.stop
        return
    end
    local pc = c:sub(plen)
    local t = tree:add(pc:peek(plen), "Group-wide policy")
    t:add(F["gsa.protocol"], pc:range(1))
    t:add(F["gwp.reserved"], pc:range(1))
    t:add(F["gwp.length"], pc:range(2))
    counts.gwp = counts.gwp + 1
    local summary = {}
    local value_fields = { [1] = F["gwp.atd"], [2] = F["gwp.dtd"], [3] = F["gwp.sender_id_bits"] }
    while pc:left() > 0 do
        local at, atype, value, is_tv = attribute(pc, t, {
            type = F["gwp.attr.type"], format = F["gwp.attr.format"],
            length = F["gwp.attr.length"],
        }, GWP_ATTRS, "GW policy attribute")
        if at == nil then
            break
        end
        if not is_tv then
            violation(at, "group-wide policy attributes are TV (RFC 9838 §4.4.3)")
            if value then
                at:add(F["gwp.attr.value"], value)
            end
        elseif value_fields[atype] then
            at:add(value_fields[atype], value)
            at:append_text(" = " .. value:uint())
            summary[#summary + 1] = GWP_ATTRS[atype] .. " " .. value:uint()
        else
            at:add(F["gwp.attr.value"], value)
        end
    end
    if #summary > 0 then
        t:append_text(": " .. table.concat(summary, ", "))
    end
end

local function dissect_gsa(body, tree)
    local t = tree:add(body, "Group Security Association (GSA)")
    t:add(F.payload, 51):set_generated()
    local c = cursor(body, t)
    local counts = { kek = 0, tek = 0, gwp = 0 }
    while c:left() > 0 do
        if not need(c, t, 4, "GSA substructure header") then
            break
        end
        local protocol = c:peek(1):uint()
        if protocol == 0 then
            group_wide_policy(c, t, counts)
        else
            gsa_policy(c, t, protocol, counts)
        end
    end
    local summary = string.format("%d KEK, %d TEK, %d group-wide", counts.kek, counts.tek, counts.gwp)
    t:append_text(": " .. summary)
    if counts.kek > 1 or counts.gwp > 1 then
        violation(t, "at most one Rekey SA policy and one group-wide policy (RFC 9838 §4.4)")
    end
    if counts.kek + counts.tek == 0 then
        violation(t, "a GSA needs a Rekey SA or a Data-Security SA policy (RFC 9838 §4.4)")
    end
    return summary
end

---------------------------------------------------------------------------
-- KD (RFC 9838 §4.5)
---------------------------------------------------------------------------

-- Wrapped key format (RFC 9838 §4.5.4): Key ID (4) | KWK ID (4) | Encrypted Key.
local function wrapped_key(at, value)
    if value == nil or value:len() < 8 then
        malformed(at, value, "wrapped key shorter than Key ID + KWK ID (8 octets)")
        return
    end
    at:add(F["kd.key_id"], value:range(0, 4))
    at:add(F["kd.kwk_id"], value:range(4, 4))
    local n = value:len() - 8
    if n == 0 then
        malformed(at, value, "wrapped key carries no encrypted key")
        return
    end
    local enc = value:range(8, n)
    at:add(F["kd.wrapped"], enc)
    at:add(F["kd.wrapped_len"], enc, n):set_generated()
    at:append_text(string.format(": Key ID %d, KWK ID %d, %d octets wrapped",
                                 value:range(0, 4):uint(), value:range(4, 4):uint(), n))
    if n < 16 or n % 8 ~= 0 then
        violation(at, "encrypted key is not RFC 5649 output (a multiple of 8, at least 16 octets)")
    end
end

local function group_key_bag(c, tree, protocol, counts)
    local spi_size = c.r:range(c.pos + 1, 1):uint()
    local blen = c.r:range(c.pos + 2, 2):uint()
    if blen < 4 + spi_size or c:left() < blen then
        malformed(tree, c:peek(c:left()), string.format(
            "group key bag: Length %d (SPI Size %d, %d octets left)", blen, spi_size, c:left()))
        c.pos = c.stop
        return
    end
    local bc = c:sub(blen)
    local t = tree:add(bc:peek(blen), "Group key bag")
    t:add(F["kd.protocol"], bc:range(1))
    local si = t:add(F["kd.spi_size"], bc:range(1))
    t:add(F["kd.length"], bc:range(2))
    local want = SPI_SIZES[protocol]
    if want ~= nil and spi_size ~= want then
        violation(si, string.format("%s SPIs are %d octets", PROTOCOLS[protocol], want))
    end
    local spi = spi_size > 0 and bc:range(spi_size) or nil
    if spi then
        t:add(F["kd.spi"], spi)
        routing_key_id(t, F["kd.routing_key_id"], protocol, spi)
    end
    t:append_text(string.format(": %s SPI %s", name_of(PROTOCOLS, protocol),
                                spi and hex(spi) or "(none)"))
    counts.group = counts.group + 1
    local sa_keys = 0
    while bc:left() > 0 do
        local at, atype, value, is_tv = attribute(bc, t, {
            type = F["kd.attr.type"], format = F["kd.attr.format"], length = F["kd.attr.length"],
        }, GROUP_BAG_ATTRS, "Key bag attribute")
        if at == nil then
            break
        end
        if atype == 1 and not is_tv then
            sa_keys = sa_keys + 1
            wrapped_key(at, value)
        else
            if atype == 1 then
                violation(at, "SA_KEY must be TLV")
            end
            if value then
                at:add(F["kd.attr.value"], value)
            end
        end
    end
    if sa_keys == 0 then
        violation(t, "group key bag without SA_KEY (RFC 9838 §4.5.2)")
    end
end

local function member_key_bag(c, tree, counts)
    local blen = c.r:range(c.pos + 2, 2):uint()
    if blen < 4 or c:left() < blen then
        malformed(tree, c:peek(c:left()), string.format(
            "member key bag: Length %d (%d octets left)", blen, c:left()))
        c.pos = c.stop
        return
    end
    local bc = c:sub(blen)
    local t = tree:add(bc:peek(blen), "Member key bag")
    t:add(F["kd.protocol"], bc:range(1))
    t:add(F["kd.reserved"], bc:range(1))
    t:add(F["kd.length"], bc:range(2))
    counts.member = counts.member + 1
    local names = {}
    while bc:left() > 0 do
        local at, atype, value, is_tv = attribute(bc, t, {
            type = F["kd.member.attr.type"], format = F["kd.attr.format"],
            length = F["kd.attr.length"],
        }, MEMBER_BAG_ATTRS, "Member key bag attribute")
        if at == nil then
            break
        end
        names[#names + 1] = name_of(MEMBER_BAG_ATTRS, atype)
        if is_tv then
            violation(at, "member key bag attributes are TLV (RFC 9838 §4.5.3)")
            at:add(F["kd.attr.value"], value)
        elseif atype == 1 then
            wrapped_key(at, value)
            if value and value:len() >= 4 and value:range(0, 4):uint() == 0 then
                violation(at, "WRAP_KEY Key ID must not be 0 (RFC 9838 §4.5.3)")
            end
        elseif atype == 2 then
            if value == nil then
                malformed(at, nil, "empty AUTH_KEY")
            else
                at:add(F["kd.auth_key"], value)
                local oid = spki_oid(value)
                add_oid(at, F["kd.auth_key_oid"], value, oid)
                at:append_text(string.format(": %d octets%s", value:len(),
                                             oid and OIDS[oid] and (", " .. OIDS[oid]) or ""))
            end
        elseif atype == 3 then
            if value == nil then
                malformed(at, nil, "empty GM_SENDER_ID")
            else
                at:add(F["kd.sender_id"], value)
            end
        elseif value then
            at:add(F["kd.attr.value"], value)
        end
    end
    if #names > 0 then
        t:append_text(": " .. table.concat(names, ", "))
    end
end

local function dissect_kd(body, tree)
    local t = tree:add(body, "Key Download (KD)")
    t:add(F.payload, 52):set_generated()
    local c = cursor(body, t)
    local counts = { group = 0, member = 0 }
    while c:left() > 0 do
        if not need(c, t, 4, "key bag header") then
            break
        end
        local protocol = c:peek(1):uint()
        if protocol == 0 then
            member_key_bag(c, t, counts)
        else
            group_key_bag(c, t, protocol, counts)
        end
    end
    local summary = string.format("%d group key bag(s), %d member key bag(s)", counts.group,
                                  counts.member)
    t:append_text(": " .. summary)
    if counts.member > 1 then
        violation(t, "at most one member key bag (RFC 9838 §4.5.3)")
    end
    return summary
end

---------------------------------------------------------------------------
-- The post-dissector
---------------------------------------------------------------------------

local DISSECTORS = { [50] = dissect_idg, [51] = dissect_gsa, [52] = dissect_kd }

-- Pair each isakmp.datapayload with the isakmp.typepayload item of the same
-- payload: same data source, the generic header 4 octets before the data.
local function g_ikev2_bodies()
    local types = { f_typepayload() }
    local out = {}
    for _, d in ipairs({ f_datapayload() }) do
        local src_len = d.source and d.source:len() or -1
        for _, t in ipairs(types) do
            if t.offset + 4 == d.offset and t.len == d.len + 4 and t.source
                and t.source:len() == src_len and DISSECTORS[t.value] then
                out[#out + 1] = { ptype = t.value, body = d.range }
                break
            end
        end
    end
    return out
end

function mrkm.dissector(tvb, pinfo, tree)
    local exchanges = { f_exchange() }
    if #exchanges == 0 then
        return
    end
    local versions = { f_mjver() }
    if #versions > 0 and versions[1].value ~= 2 then
        return -- IKEv1 (GDOI and friends): not ours
    end
    local exchange = exchanges[1].value
    local bodies = g_ikev2_bodies()
    if not GIKEV2_EXCHANGES[exchange] and #bodies == 0 then
        return
    end
    local root = tree:add(mrkm, tvb:range(0, 0))
    root:append_text(": " .. name_of(EXCHANGES, exchange))
    root:add(F.exchange, exchanges[1].range)

    local name = EXCHANGES[exchange]
    if GIKEV2_EXCHANGES[exchange] then
        local info = tostring(pinfo.cols.info)
        local renamed, n = info:gsub("Unknown " .. exchange, name, 1)
        if n > 0 then
            pinfo.cols.info:set(renamed)
        end
    end

    if #{ f_enc_data() } > #{ f_enc_decrypted() } then
        root:add_proto_expert_info(E.undecrypted)
    end

    for _, b in ipairs(bodies) do
        local ok, err = pcall(DISSECTORS[b.ptype], b.body, root)
        if not ok then
            root:add_tvb_expert_info(E.bug, b.body, "mrkm.lua: " .. tostring(err))
        end
    end
end

register_postdissector(mrkm)
