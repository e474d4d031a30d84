// HTTP vocabulary shared by the server, the client and the handlers.
#pragma once

#include <array>
#include <chrono>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>
#include <string_view>

#include "offerd/domain/errors.hpp"
#include "offerd/obs/trace.hpp"

namespace offerd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// The single completion token: errors come back as values, never as exceptions.
inline constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

inline constexpr std::string_view request_id_header = "X-Request-ID";
inline constexpr std::string_view deadline_header = "X-Request-Deadline-Ms";

// A JSON response with Content-Type set and the body's length prepared.
response json_response(http::status status, std::string body);
// {"detail": ...} with the given status.
response detail_response(http::status status, std::string_view detail);

// The message's header as it goes on the wire (start line, fields as stored, blank line), appended
// to out; the body follows it unchanged. The message must carry its Content-Length
// (json_response and prepare_payload set it). wire_buffers: header and body for one gathered write.
void append_wire_header(std::string& out, const request& req);
void append_wire_header(std::string& out, const response& res);
template <bool is_request>
std::array<asio::const_buffer, 2> wire_buffers(const std::string& header, const http::message<is_request, http::string_body>& m) {
    return {asio::buffer(header), asio::buffer(m.body())};
}
// Whether wire_buffers may be written in one go over TLS (beast::ssl_stream). Its flat_stream
// coalesces a gathered write up to one record (16 KiB); beyond, once a write took the header
// exactly, the next is handed an empty prefix, writes nothing, and async_write stops short. A
// larger message is written as two buffers, header then body.
template <bool is_request>
bool fits_one_tls_record(const std::string& header, const http::message<is_request, http::string_body>& m) {
    return header.size() + m.body().size() <= 16 * 1024;
}

// What a request's Transfer-Encoding value allows (RFC 9112 6.1, 6.3): ok when it is exactly
// `chunked`; bad_request when chunked is not the final coding or is repeated (the body length
// cannot be known: answer and close); not_implemented for any other coding (we decode none).
http::status transfer_coding_verdict(std::string_view value) noexcept;

// The one map from error code to HTTP status.
http::status status_for(errc e) noexcept;
// A response for a failure. 5xx bodies carry a generic message, never internals; a 422 carries
// `errors` ([{field, message}], every invalid field the decoder found) beside `detail`.
response failure_response(const failure& f);

// The IMF-fixdate for a Date header ("Tue, 01 Dec 2026 23:00:55 GMT"). Formatted once per second
// per thread; the view is valid until this thread's next call.
std::string_view http_date(std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) noexcept;

// 16 hex chars, unique enough for correlating logs; cheap (thread-local PRNG).
std::string new_request_id();

// W3C trace context (obs/trace.hpp). parse_traceparent takes the incoming header's trace id,
// parent span id and flags when the header is valid (version 00 layout, non-zero ids), else
// starts a new trace; the request always gets a new span id of its own.
trace_context parse_traceparent(std::string_view header);
// "00-<trace id>-<span id>-<flags>" for a call we make on behalf of the request: the upstream's
// own span then names ours as its parent.
std::string child_traceparent(const trace_context& t);

}  // namespace offerd
