// http[s]://host:port[/base] parsing for upstream and target URLs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "offerd/domain/errors.hpp"

namespace boost::asio::ssl {
class context;
}

namespace offerd {

// host:port, an IPv6 host in brackets ([::1]:8001, RFC 3986 3.2.2): how addresses are printed.
std::string host_port(std::string_view host, std::uint16_t port);

struct url {
    std::string host;  // a name or an address; an IPv6 one without its brackets (what the resolver takes)
    std::uint16_t port = 80;
    std::string base_path;  // without trailing slash; "" for the root
    std::string authorization{};  // sent as Authorization on every request to it when not empty: a credential, never printed
    bool tls = false;             // https: the peer is verified (chain, then host name or IP address; SNI for names)
    // The verifying context for https (net/tls.hpp); shared by every client of this URL and thread-safe.
    // Null with tls: http_client makes one over the system store.
    std::shared_ptr<boost::asio::ssl::context> tls_context{};

    // The Host header and the URL's authority.
    std::string host_header() const { return host_port(host, port); }
    std::string to_string() const { return (tls ? "https://" : "http://") + host_header() + base_path; }
};

// http:// (default port 80) or https:// (443), with an optional base path (kept percent-encoded,
// no trailing slash) that every request to the upstream starts with. No credentials, query or
// fragment. Fails naming the problem.
result<url> parse_url(std::string_view text);

}  // namespace offerd
