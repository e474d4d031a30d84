// URL parsing.
#include "offerd/net/url.hpp"

#include <charconv>

namespace offerd {

result<url> parse_url(std::string_view text) {
    const std::string quoted = "'" + std::string(text) + "'";
    url u;
    if (text.starts_with("https://")) {
        u.tls = true;
        u.port = 443;
        text.remove_prefix(8);
    } else if (text.starts_with("http://")) {
        text.remove_prefix(7);
    } else {
        return fail(errc::invalid_field, "URL must start with http:// or https:// (got " + quoted + ")");
    }
    const std::size_t slash = text.find('/');
    std::string_view authority = text.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view{} : text.substr(slash);
    while (path.ends_with('/')) path.remove_suffix(1);
    u.base_path = std::string(path);
    std::string_view host = authority;
    if (authority.starts_with('[')) {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return fail(errc::invalid_field, "URL has an unterminated IPv6 address: " + quoted);
        host = authority.substr(1, close - 1);
        authority.remove_prefix(close + 1);
        if (!authority.empty() && authority.front() != ':') return fail(errc::invalid_field, "URL is malformed: " + quoted);
    } else {
        const std::size_t colon = authority.rfind(':');
        host = authority.substr(0, colon);
        authority = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
    }
    if (host.empty()) return fail(errc::invalid_field, "URL has no host: " + quoted);
    u.host = std::string(host);
    if (!authority.empty()) {
        authority.remove_prefix(1);  // ':'
        unsigned port = 0;
        const auto [ptr, ec] = std::from_chars(authority.data(), authority.data() + authority.size(), port);
        if (ec != std::errc{} || ptr != authority.data() + authority.size() || port == 0 || port > 65535)
            return fail(errc::invalid_field, "URL has an invalid port: " + quoted);
        u.port = static_cast<std::uint16_t>(port);
    }
    return u;
}

}  // namespace offerd
