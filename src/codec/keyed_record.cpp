// Durable transaction payloads: the key as a JSON string, the transaction through the wire codec.
#include "offerd/codec/keyed_record.hpp"

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"

namespace offerd {

std::string encode_keyed_record(std::string_view key, const transaction& txn) {
    std::string payload;
    json_writer w(payload);
    w.begin_object().member("key", key).key("txn").raw(encode_transaction(txn)).end_object();
    return payload;
}

std::optional<keyed_record> decode_keyed_record(std::string_view payload) {
    // {"key":"…","txn":{…}}: the key is a JSON string we wrote; the transaction goes through the
    // wire codec (exact numbers, validation).
    constexpr std::string_view key_tag = "{\"key\":", txn_tag = ",\"txn\":";
    const auto txn_at = payload.rfind(txn_tag);
    if (!payload.starts_with(key_tag) || txn_at == std::string_view::npos || !payload.ends_with('}')) return std::nullopt;
    auto key = decode_json_string(payload.substr(key_tag.size(), txn_at - key_tag.size()));
    auto t = decode_transaction(payload.substr(txn_at + txn_tag.size(), payload.size() - txn_at - txn_tag.size() - 1));
    if (!key || !t) return std::nullopt;
    return keyed_record{std::move(key).value(), std::move(t).value()};
}

}  // namespace offerd
