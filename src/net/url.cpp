// URL parsing with Boost.URL: the RFC 3986 grammar (IPv6 literals, percent-encoded paths, port
// digits) is the library's; what offerd adds is which URLs make sense for an upstream.
#include "offerd/net/url.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>

namespace offerd {

namespace {
namespace urls = boost::urls;

result<url> invalid(const std::string& why) { return fail(errc::invalid_field, why); }
}  // namespace

std::string host_port(std::string_view host, std::uint16_t port) {
    const bool ipv6 = host.find(':') != std::string_view::npos;
    return (ipv6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

result<url> parse_url(std::string_view text) {
    const std::string quoted = "'" + std::string(text) + "'";
    if (!text.starts_with("http://") && !text.starts_with("https://"))
        return invalid("URL must start with http:// or https:// (got " + quoted + ")");
    auto parsed = urls::parse_uri(urls::string_view(text.data(), text.size()));
    if (!parsed) {
        // The grammar's own message says little ("leftover", "mismatch"): name the usual culprits.
        const std::string_view rest = text.substr(text.find("//") + 2);
        const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
        if (authority.starts_with('[') && authority.find(']') == std::string_view::npos)
            return invalid("URL has an unterminated IPv6 address: " + quoted);
        if (authority.empty()) return invalid("URL has no host: " + quoted);
        const std::size_t colon = authority.rfind(':');
        if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos)
            return invalid("URL has an invalid port: " + quoted);
        return invalid("URL is malformed: " + quoted);
    }
    const urls::url_view& v = *parsed;
    url u;
    u.tls = v.scheme_id() == urls::scheme::https;
    u.port = u.tls ? 443 : 80;
    if (v.has_userinfo())  // the message shows the URL without them: they may be a password
        return invalid("URL must not carry credentials (user@ or user:password@): give the upstream's key with its --*-key-file flag (got '" +
                       std::string(v.scheme()) + "://***@" + std::string(v.encoded_host_and_port()) + std::string(v.encoded_path()) + "')");
    if (v.has_query() || v.has_fragment()) return invalid("URL must not have a query (?) or a fragment (#): " + quoted);
    switch (v.host_type()) {
    case urls::host_type::ipv6: u.host = v.host_ipv6_address().to_string(); break;
    case urls::host_type::ipv4: u.host = std::string(v.encoded_host()); break;
    case urls::host_type::name: {
        const auto name = v.encoded_host();
        if (name.find('%') != urls::string_view::npos) return invalid("URL host must be a plain name or address, not percent-encoded: " + quoted);
        u.host = std::string(name);
        break;
    }
    default: return invalid("URL has no usable host: " + quoted);
    }
    if (u.host.empty()) return invalid("URL has no host: " + quoted);
    if (v.has_port()) {
        const auto digits = v.port();
        unsigned port = 0;
        const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        if (digits.empty() || ec != std::errc{} || ptr != digits.data() + digits.size() || port == 0 || port > 65535)
            return invalid("URL has an invalid port: " + quoted);
        u.port = static_cast<std::uint16_t>(port);
    }
    // Kept percent-encoded: it is sent as the start of the request target as it is.
    std::string_view path(v.encoded_path().data(), v.encoded_path().size());
    // After an authority a path is empty or starts with '/' (RFC 3986 3.3); Boost.URL 1.81
    // reads "h:80x" as port 80 and path "x", so that is checked here.
    if (!path.empty() && !path.starts_with('/'))
        return invalid(std::string(v.has_port() ? "URL has an invalid port: " : "URL is malformed: ") + quoted);
    while (path.ends_with('/')) path.remove_suffix(1);
    u.base_path = std::string(path);
    return u;
}

}  // namespace offerd
