// The W3C trace context of one request, as its log events carry it. Parsed and propagated by
// net/http.hpp (parse_traceparent, child_traceparent).
#pragma once

#include <string>
#include <string_view>

namespace offerd {

struct trace_context {
    std::string trace_id;        // 32 lowercase hex
    std::string flags = "01";    // sampled
    std::string span_id{};       // 16 lowercase hex: this server's span for the request
    std::string parent_span_id{};  // the caller's span (from traceparent); empty when the trace starts here
    std::string_view service{};    // the listener (role) serving the request; set by the listener
};

}  // namespace offerd
