// Route table: method + path pattern -> handler, with 404 vs 405 and a catch-all 500.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/net/http.hpp"

namespace offerd {

struct request_context {
    const request& req;
    std::string_view param;  // the {name} segment when the route has one
    std::string request_id;  // echoed from X-Request-ID or generated
    std::size_t worker = 0;  // index of the io_context (thread) serving this connection
};

using handler = std::function<asio::awaitable<response>(request_context&)>;

class router {
public:
    // pattern: "/a/b", or "/a/{name}" with one trailing parameter segment (non-empty, no '/').
    void add(http::verb method, std::string pattern, handler h);

    // Never throws: an exception escaping a handler becomes a bare 500 (and is reported via on_error).
    asio::awaitable<response> dispatch(request_context& ctx) const;

    std::function<void(const request_context&, std::string_view what)> on_error;

private:
    struct route {
        http::verb method;
        std::string prefix;  // the literal part; for parameter routes ends with '/'
        bool has_param;
        handler h;
    };
    std::vector<route> routes_;
};

}  // namespace offerd
