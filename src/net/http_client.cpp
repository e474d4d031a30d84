// Upstream HTTP client with a per-thread keep-alive pool.
#include "offerd/net/http_client.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdexcept>
#include <tuple>

#include "offerd/net/loopback_affinity.hpp"
#include "offerd/net/tls.hpp"

namespace offerd {

using tcp = asio::ip::tcp;

struct http_client::connection {
    explicit connection(const asio::any_io_executor& ex) : stream(ex) {}
    ~connection() { unclaim(); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    void unclaim() noexcept {
        if (affinity && claimed) affinity->release(claimed);
        claimed = 0;
    }
    beast::tcp_stream stream;  // the lowest layer: expiry and close act on it
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream&>> tls;  // over stream, for an https target
    loopback_affinity* affinity = nullptr;
    std::uint16_t claimed = 0;  // local port recorded in affinity
    beast::flat_buffer buffer;
    std::chrono::steady_clock::time_point idle_since;
};

namespace {

failure map_error(const beast::error_code& ec, const url& target, std::string_view step) {
    const std::string where = target.host_header() + " (" + std::string(step) + ")";
    if (ec == beast::error::timeout) return fail(errc::upstream_timeout, "upstream " + where + " timed out");
    if (ec == http::error::body_limit || ec == http::error::header_limit)
        return fail(errc::upstream_bad_response, "upstream " + where + " answered too much");
    if (ec.category() == beast::http::make_error_code(http::error::bad_version).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
        return fail(errc::upstream_bad_response, "upstream " + where + " answered malformed HTTP");
    return fail(errc::upstream_unavailable, "upstream " + where + " unavailable: " + ec.message());
}

// A failed TLS handshake: a certificate the context does not accept, or a peer that does not
// speak TLS (an http:// service behind an https:// URL), is upstream_bad_response (502, not
// retried: the next attempt would fail alike); a timeout or a reset maps as for any other step.
failure handshake_error(const beast::error_code& ec, SSL* ssl, const url& target) {
    if (ec.category() != asio::error::get_ssl_category()) return map_error(ec, target, "tls handshake");
    const std::string where = "upstream " + target.host_header() + " (tls handshake)";
    if (ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        const long why = SSL_get_verify_result(ssl);
        return fail(errc::upstream_bad_response, where + ": certificate rejected: " + X509_verify_cert_error_string(why) +
                                                     " (verified for '" + target.host + "')");
    }
    return fail(errc::upstream_bad_response, where + " failed: " + ec.message());
}

bool stale_connection_error(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == http::error::partial_message || ec == asio::ssl::error::stream_truncated;
}

std::chrono::milliseconds to_ms(std::chrono::steady_clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

}  // namespace

http_client::http_client(const worker_context& worker, url target, const client_limits& limits, pool_gauges* gauges)
    : http_client(worker.executor, std::move(target), limits, gauges) {
    worker_ = worker;
}

http_client::http_client(asio::any_io_executor ex, url target, const client_limits& limits, pool_gauges* gauges)
    : ex_(std::move(ex)),
      target_(std::move(target)),
      host_header_(target_.host_header()),
      limits_(limits),
      gauges_(gauges),
      tls_(target_.tls_context) {
    if (target_.tls && !tls_) {
        auto system = make_client_tls_context({});
        if (!system) throw std::runtime_error(system.error().detail);
        tls_ = std::move(system).value();
    }
}

http_client::~http_client() {
    if (gauges_) gauges_->idle.fetch_sub(static_cast<std::int64_t>(idle_.size()), std::memory_order_relaxed);
}

namespace {
// Counts a connection as busy for as long as it is out of the idle pool.
struct busy_mark {
    pool_gauges* g;
    explicit busy_mark(pool_gauges* gauges) : g(gauges) {
        if (g) g->busy.fetch_add(1, std::memory_order_relaxed);
    }
    ~busy_mark() {
        if (g) g->busy.fetch_sub(1, std::memory_order_relaxed);
    }
    busy_mark(const busy_mark&) = delete;
    busy_mark& operator=(const busy_mark&) = delete;
};
}  // namespace

asio::awaitable<result<std::unique_ptr<http_client::connection>>> http_client::connect(
    std::chrono::steady_clock::duration budget) {
    if (endpoints_.empty()) {
        tcp::resolver resolver(ex_);
        auto [ec, results] = co_await resolver.async_resolve(target_.host, std::to_string(target_.port),
                                                              tcp::resolver::numeric_service, nothrow);
        if (ec) co_return fail(errc::upstream_unavailable, "upstream " + host_header_ + " cannot be resolved: " + ec.message());
        for (const auto& r : results) endpoints_.push_back(r.endpoint());
    }
    auto c = std::make_unique<connection>(ex_);
    c->stream.expires_after(budget);
    beast::error_code ec = asio::error::host_not_found;
    for (const tcp::endpoint& ep : endpoints_) {  // in order, like a range connect, under one expiry
        tcp::socket& sock = c->stream.socket();
        beast::error_code ignored;
        if (sock.is_open()) sock.close(ignored);
        c->unclaim();
        if (worker_.affinity && ep.address().is_loopback()) {
            // Bind first so the local port is known, and recorded, before the peer can accept.
            if (sock.open(ep.protocol(), ec); ec) continue;
            if (sock.bind(tcp::endpoint(ep.address(), 0), ec); ec) continue;
            const auto local = sock.local_endpoint(ec);
            if (ec) continue;
            c->affinity = worker_.affinity;
            c->claimed = local.port();
            worker_.affinity->claim(c->claimed, worker_.index);
        }
        std::tie(ec) = co_await c->stream.async_connect(ep, nothrow);
        if (!ec || ec == beast::error::timeout) break;
    }
    if (ec) co_return map_error(ec, target_, "connect");
    beast::error_code ignored;
    c->stream.socket().set_option(tcp::no_delay(true), ignored);
    if (target_.tls) {
        // Under the same expiry as the connect. The name is verified by OpenSSL (RFC 6125 rules)
        // and sent as SNI; an IP address is matched against the certificate's IP entries.
        c->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream&>>(c->stream, *tls_);
        SSL* ssl = c->tls->native_handle();
        beast::error_code not_ip;
        (void)asio::ip::make_address(target_.host, not_ip);
        const bool set = not_ip ? SSL_set1_host(ssl, target_.host.c_str()) == 1 &&
                                      SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                                               const_cast<char*>(target_.host.c_str())) == 1
                                : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), target_.host.c_str()) == 1;
        if (!set) co_return fail(errc::upstream_unavailable, "upstream " + host_header_ + ": cannot verify TLS for host '" + target_.host + "'");
        std::tie(ec) = co_await c->tls->async_handshake(asio::ssl::stream_base::client, nothrow);
        if (ec) co_return handshake_error(ec, ssl, target_);
    }
    co_return c;
}

asio::awaitable<result<response>> http_client::send(http::verb method, std::string_view path, std::string body,
                                                    const call_options& opts) {
    request req{method, target_.base_path + std::string(path), 11};
    req.set(http::field::host, host_header_);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    if (!opts.request_id.empty()) req.set(request_id_header, opts.request_id);
    if (!opts.idempotency_key.empty()) req.set("Idempotency-Key", opts.idempotency_key);
    if (!opts.traceparent.empty()) req.set("traceparent", opts.traceparent);
    if (!target_.authorization.empty()) req.set(http::field::authorization, target_.authorization);
    req.body() = std::move(body);
    req.prepare_payload();
    std::string wire;

    for (int attempt = 0;; ++attempt) {
        const auto now = std::chrono::steady_clock::now();
        const auto budget = opts.until.budget(limits_.timeout, now);
        if (budget <= std::chrono::steady_clock::duration::zero())
            co_return fail(errc::deadline_exceeded, "request deadline exceeded before calling " + host_header_);
        if (opts.until.at() != std::chrono::steady_clock::time_point::max())
            req.set(deadline_header, std::to_string(to_ms(opts.until.remaining(now)).count()));

        // One expiry for connect, write and read together, so a slow connect cannot double the
        // per-call bound.
        const auto expiry = now + budget;
        std::unique_ptr<connection> c;
        // Connections idle longer than max_idle_age may have been closed by the peer: drop them.
        while (!idle_.empty() && now - idle_.back()->idle_since > limits_.max_idle_age) {
            idle_.pop_back();
            if (gauges_) gauges_->idle.fetch_sub(1, std::memory_order_relaxed);
        }
        // After a stale pooled connection (attempt 1) always connect afresh: the rest of the pool
        // went idle at about the same time and is likely stale too.
        const bool reused = attempt == 0 && !idle_.empty();
        if (reused) {
            c = std::move(idle_.back());
            idle_.pop_back();
            if (gauges_) gauges_->idle.fetch_sub(1, std::memory_order_relaxed);
        } else {
            auto fresh = co_await connect(budget);
            if (!fresh) co_return std::move(fresh).error();
            c = std::move(fresh).value();
        }
        const busy_mark busy(gauges_);
        c->stream.expires_at(expiry);
        wire.clear();
        append_wire_header(wire, req);
        // Plain or TLS: one branch per operation, no indirection on the plain path.
        beast::error_code wec;
        if (!c->tls)
            std::tie(wec, std::ignore) = co_await asio::async_write(c->stream, wire_buffers(wire, req), nothrow);
        else if (fits_one_tls_record(wire, req))
            std::tie(wec, std::ignore) = co_await asio::async_write(*c->tls, wire_buffers(wire, req), nothrow);
        else if (std::tie(wec, std::ignore) = co_await asio::async_write(*c->tls, asio::buffer(wire), nothrow); !wec)
            std::tie(wec, std::ignore) = co_await asio::async_write(*c->tls, asio::buffer(req.body()), nothrow);
        if (wec) {
            if (reused && attempt == 0 && stale_connection_error(wec)) continue;
            co_return map_error(wec, target_, "write");
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(limits_.max_response_bytes);
        auto [hec, hn] = c->tls ? co_await http::async_read_header(*c->tls, c->buffer, parser, nothrow)
                                : co_await http::async_read_header(c->stream, c->buffer, parser, nothrow);
        beast::error_code rec = hec;
        if (!rec && !parser.is_done()) {
            // Beast reads at most the buffer's free capacity at a time; a pooled buffer stays
            // small, so a long history (150 KB for 1,000 entries) took dozens of reads. Size it
            // to the announced body once (bounded) so the body arrives in one or two reads.
            if (const auto length = parser.content_length(); length && *length > c->buffer.capacity() - c->buffer.size())
                c->buffer.reserve(c->buffer.size() + static_cast<std::size_t>(std::min<std::uint64_t>(*length, limits_.read_reserve_bytes)));
            auto [bec, bn] = c->tls ? co_await http::async_read(*c->tls, c->buffer, parser, nothrow)
                                    : co_await http::async_read(c->stream, c->buffer, parser, nothrow);
            rec = bec;
        }
        if (rec) {
            if (reused && attempt == 0 && !parser.got_some() && stale_connection_error(rec)) continue;
            co_return map_error(rec, target_, "read");
        }
        response res = parser.release();
        if (res.keep_alive() && idle_.size() < limits_.max_idle) {
            c->stream.expires_never();
            if (c->buffer.capacity() > limits_.read_reserve_bytes) c->buffer.shrink_to_fit();
            c->idle_since = std::chrono::steady_clock::now();
            idle_.push_back(std::move(c));
            if (gauges_) gauges_->idle.fetch_add(1, std::memory_order_relaxed);
        }
        co_return res;
    }
}

}  // namespace offerd
