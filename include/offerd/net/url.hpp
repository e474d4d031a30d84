// http://host:port[/base] parsing for upstream and target URLs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "offerd/domain/errors.hpp"

namespace offerd {

struct url {
    std::string host;
    std::uint16_t port = 80;
    std::string base_path;  // without trailing slash; "" for the root
    std::string authorization{};  // sent as Authorization on every request to it when not empty: a credential, never printed

    std::string host_header() const { return host + ":" + std::to_string(port); }
    std::string to_string() const { return "http://" + host_header() + base_path; }
};

// Only plain http (the services are on a trusted network or loopback). Fails naming the problem.
result<url> parse_url(std::string_view text);

}  // namespace offerd
