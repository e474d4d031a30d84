// API keys: the keys file (`name:sha256-hex[:N/s[:burst]]` a line), hashing, constant-time lookup
// and the parsing of an `Authorization: Bearer` header.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/domain/errors.hpp"
#include "offerd/security/security_config.hpp"

namespace offerd {

using sha256_digest = std::array<unsigned char, 32>;

sha256_digest sha256(std::string_view data) noexcept;
std::string to_hex(const sha256_digest& d);

struct api_client {
    std::string name;                // [A-Za-z0-9._-], 1 to 64 characters: it goes into logs and metrics
    sha256_digest digest{};          // SHA-256 of the key; the key itself is never stored
    std::optional<rate_limit> limit; // overrides --rate-limit / --rate-burst for this client
};

class key_set {
public:
    key_set() = default;
    explicit key_set(std::vector<api_client> clients) : clients_(std::move(clients)) {}

    // The client whose key hashes like `key`, else nullptr. Every entry is compared with
    // CRYPTO_memcmp and none is skipped, so the time taken does not depend on which entry or
    // which byte differs.
    const api_client* find(std::string_view key) const noexcept { return find(sha256(key)); }
    // The same for a key already hashed.
    const api_client* find(const sha256_digest& digest) const noexcept;
    std::size_t size() const noexcept { return clients_.size(); }

private:
    std::vector<api_client> clients_;
};

// Parses the keys file's text: one client a line, `#` comments and blank lines ignored, optional
// third field a rate (`50/s`) and fourth a burst. Fails with invalid_field naming the line number
// and the problem, never the line's content. Names and digests must be unique.
result<key_set> parse_key_file(std::string_view text);
// Reads and parses the file; fails naming the path when it cannot be read.
result<key_set> load_key_file(const std::string& path);

// The keys-file line for `name` and `key` (what `offerd hash-key NAME` prints). Fails when the
// name is not valid or the key is shorter than 16 characters or not Bearer-token characters.
result<std::string> key_file_line(std::string_view name, std::string_view key);

// The credential of an `Authorization: Bearer TOKEN` value: scheme case-insensitive, token in
// RFC 6750's b64token alphabet, surrounding spaces allowed; nullopt for anything else.
std::optional<std::string_view> parse_bearer(std::string_view header) noexcept;

// Reads a secret file: its content with one trailing newline removed. Fails naming the path (never
// the content) when it cannot be read, is empty, or is over 64 KiB.
result<std::string> read_secret_file(const std::string& path);

}  // namespace offerd
