// API keys file parsing, hashing and lookup.
#include "offerd/security/api_keys.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>
#include <fstream>
#include <iterator>
#include <sstream>

namespace offerd {

namespace {

bool valid_name(std::string_view n) noexcept {
    if (n.empty() || n.size() > 64) return false;
    for (const char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
    return true;
}

bool b64token_char(char c) noexcept {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

bool valid_token(std::string_view t) noexcept {
    std::size_t i = 0;
    while (i < t.size() && b64token_char(t[i])) ++i;
    if (i == 0) return false;
    while (i < t.size() && t[i] == '=') ++i;
    return i == t.size();
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        const std::size_t at = s.find(sep);
        out.push_back(trim(s.substr(0, at)));
        if (at == std::string_view::npos) return out;
        s.remove_prefix(at + 1);
    }
}

result<std::string> read_file(const std::string& path, std::size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(errc::invalid_field, "cannot read '" + path + "'");
    std::string text;
    char buf[4096];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_bytes) return fail(errc::invalid_field, "'" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
    }
    if (in.bad()) return fail(errc::invalid_field, "cannot read '" + path + "'");
    return text;
}

}  // namespace

sha256_digest sha256(std::string_view data) noexcept {
    sha256_digest d{};
    unsigned int n = 0;
    EVP_Digest(data.data(), data.size(), d.data(), &n, EVP_sha256(), nullptr);
    return d;
}

std::string to_hex(const sha256_digest& d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(d.size() * 2);
    for (const unsigned char b : d) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

const api_client* key_set::find(const sha256_digest& d) const noexcept {
    const api_client* found = nullptr;
    for (const api_client& c : clients_)  // no early exit: the time does not say which entry matched
        if (CRYPTO_memcmp(c.digest.data(), d.data(), d.size()) == 0) found = &c;
    return found;
}

result<key_set> parse_key_file(std::string_view text) {
    std::vector<api_client> clients;
    std::size_t line_no = 0;
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        const std::string_view line = trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++line_no;
        if (line.empty() || line.front() == '#') continue;
        const auto bad = [&](std::string_view what) {
            return fail(errc::invalid_field, "line " + std::to_string(line_no) + ": " + std::string(what));
        };
        const auto fields = split(line, ':');
        if (fields.size() < 2 || fields.size() > 4) return bad("expected name:sha256-hex[:N/s[:burst]]");
        api_client c;
        if (!valid_name(fields[0])) return bad("the name must be 1 to 64 of A-Z a-z 0-9 . _ -");
        c.name = std::string(fields[0]);
        if (fields[1].size() != 64) return bad("the key hash must be 64 hex digits (SHA-256; see offerd hash-key)");
        for (std::size_t i = 0; i < 32; ++i) {
            const int hi = hex_value(fields[1][2 * i]), lo = hex_value(fields[1][2 * i + 1]);
            if (hi < 0 || lo < 0) return bad("the key hash must be 64 hex digits (SHA-256; see offerd hash-key)");
            c.digest[i] = static_cast<unsigned char>(hi * 16 + lo);
        }
        if (fields.size() >= 3) {
            auto r = parse_rate(fields[2]);
            if (!r) return bad("the rate must be N/s with N > 0");
            rate_limit lim{*r, 0};
            if (fields.size() == 4) {
                unsigned long b = 0;
                std::istringstream in{std::string(fields[3])};
                if (!(in >> b) || !in.eof() || b == 0 || b > 1'000'000) return bad("the burst must be 1 to 1000000");
                lim.burst = static_cast<std::uint32_t>(b);
            }
            c.limit = lim;
        }
        for (const api_client& other : clients) {
            if (other.name == c.name) return bad("client '" + c.name + "' appears twice");
            if (other.digest == c.digest) return bad("the same key hash appears twice");
        }
        clients.push_back(std::move(c));
    }
    return key_set(std::move(clients));
}

result<key_set> load_key_file(const std::string& path) {
    auto text = read_file(path, 16u << 20);
    if (!text) return std::move(text).error();
    auto keys = parse_key_file(*text);
    if (!keys) return fail(errc::invalid_field, "--api-keys '" + path + "' " + keys.error().detail);
    return keys;
}

result<std::string> key_file_line(std::string_view name, std::string_view key) {
    if (!valid_name(name)) return fail(errc::invalid_field, "the name must be 1 to 64 of A-Z a-z 0-9 . _ -");
    if (key.size() < 16) return fail(errc::invalid_field, "the key must be at least 16 characters");
    if (!valid_token(key)) return fail(errc::invalid_field, "the key may use only A-Z a-z 0-9 - . _ ~ + / (and trailing =)");
    return std::string(name) + ":" + to_hex(sha256(key));
}

std::optional<std::string_view> parse_bearer(std::string_view header) noexcept {
    header = trim(header);
    constexpr std::string_view scheme = "bearer";
    if (header.size() <= scheme.size() || (header[scheme.size()] != ' ' && header[scheme.size()] != '\t')) return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return std::nullopt;
    const std::string_view token = trim(header.substr(scheme.size()));
    if (!valid_token(token)) return std::nullopt;
    return token;
}

result<std::string> read_secret_file(const std::string& path) {
    auto text = read_file(path, 64u << 10);
    if (!text) return std::move(text).error();
    std::string s = std::move(*text);
    if (s.ends_with('\n')) s.pop_back();
    if (s.ends_with('\r')) s.pop_back();
    if (s.empty()) return fail(errc::invalid_field, "'" + path + "' is empty");
    return s;
}

}  // namespace offerd
