// libFuzzer target: upstream URL parsing. Invariants: every rejection says why, and what parses
// prints as a URL that parses back to the same scheme, host, port and base path (so the URL a
// log line or an error shows is the one offerd uses, IPv6 hosts included).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "offerd/net/url.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto u = offerd::parse_url(text);
    if (!u) {
        if (u.error().detail.empty()) std::abort();
        return 0;
    }
    if (u->host.empty() || u->port == 0 || u->base_path.ends_with('/')) std::abort();
    auto back = offerd::parse_url(u->to_string());
    if (!back || back->host != u->host || back->port != u->port || back->tls != u->tls || back->base_path != u->base_path)
        std::abort();
    return 0;
}
