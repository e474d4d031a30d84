// Durable record lines: CRC-32 over the JSON payload; Boost.CRC does the arithmetic.
#include "offerd/codec/record_line.hpp"

#include <boost/crc.hpp>
#include <charconv>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"

namespace offerd {

namespace {
std::uint32_t crc32(std::string_view s) {
    boost::crc_32_type crc;
    crc.process_bytes(s.data(), s.size());
    return crc.checksum();
}

template <class T>
bool read_number(std::string_view& s, T& out) {
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc{} || ptr == s.data() + s.size() || *ptr != ' ') return false;
    s.remove_prefix(static_cast<std::size_t>(ptr - s.data()) + 1);
    return true;
}
}  // namespace

std::string encode_record_line(const keyed_record& r) {
    std::string payload;
    json_writer w(payload);
    w.begin_object().member("key", std::string_view(r.key)).key("txn").raw(encode_transaction(r.txn)).end_object();
    return "P " + std::to_string(r.seq) + ' ' + std::to_string(crc32(payload)) + ' ' + payload + '\n';
}

std::optional<keyed_record> decode_record_line(std::string_view line) {
    if (line.ends_with('\n')) line.remove_suffix(1);
    if (!line.starts_with("P ")) return std::nullopt;
    line.remove_prefix(2);
    keyed_record r;
    std::uint32_t crc = 0;
    if (!read_number(line, r.seq) || !read_number(line, crc) || crc32(line) != crc) return std::nullopt;
    // {"key":"…","txn":{…}}: the key is a JSON string we wrote; the transaction goes through the
    // wire codec (exact numbers, validation).
    constexpr std::string_view key_tag = "{\"key\":", txn_tag = ",\"txn\":";
    const auto txn_at = line.rfind(txn_tag);
    if (!line.starts_with(key_tag) || txn_at == std::string_view::npos || !line.ends_with('}')) return std::nullopt;
    auto key = decode_json_string(line.substr(key_tag.size(), txn_at - key_tag.size()));
    auto t = decode_transaction(line.substr(txn_at + txn_tag.size(), line.size() - txn_at - txn_tag.size() - 1));
    if (!key || !t) return std::nullopt;
    r.key = std::move(key).value();
    r.txn = std::move(t).value();
    return r;
}

}  // namespace offerd
