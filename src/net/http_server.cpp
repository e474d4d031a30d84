// The listener and the per-connection session loop.
#include "offerd/net/http_server.hpp"

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <mutex>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <tuple>
#include <type_traits>
#include <stdexcept>
#include <unistd.h>
#include <unordered_set>
#include <vector>

#include "offerd/net/loopback_affinity.hpp"
#include "offerd/net/tls.hpp"
#include "offerd/net/url.hpp"
#include "offerd/obs/log.hpp"

namespace offerd {

using tcp = asio::ip::tcp;

namespace {
using tls_stream = beast::ssl_stream<beast::tcp_stream&>;

struct connection {
    explicit connection(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;  // the lowest layer: expiry, cancellation and shutdown act on it
    std::unique_ptr<tls_stream> tls;  // over stream, on a TLS listener once accepted
    bool busy = false;  // a request is arriving or being handled; only touched on the connection's worker
};

// The layer a session reads and writes: the TCP stream itself, or TLS over it. The session loop
// is instantiated for each, so the plain path has no indirection.
template <class Stream>
Stream& layer(connection& c) {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>)
        return c.stream;
    else
        return *c.tls;
}

// Whether the connection's next bytes arrive within `hold`. The timer cancels the socket's wait
// (nothing else is pending on it then); `done` keeps a timer that fired just as the bytes came
// from cancelling the read that follows.
asio::awaitable<bool> first_bytes_within(std::shared_ptr<connection> c, std::chrono::milliseconds hold) {
    tcp::socket& sock = c->stream.socket();
    if (beast::error_code aec; sock.available(aec) > 0 || aec) co_return true;
    auto done = std::make_shared<bool>(false);
    asio::steady_timer timer(sock.get_executor(), hold);
    timer.async_wait([c, done](const beast::error_code& ec) {
        if (ec || *done) return;
        beast::error_code ignored;
        c->stream.socket().cancel(ignored);
    });
    auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, nothrow);
    *done = true;
    timer.cancel();
    co_return !ec;
}

// The peer closed or went silent: end the connection without an answer.
bool quiet_end(const beast::error_code& ec) {
    return ec == beast::error::timeout || ec == http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::operation_aborted || ec == asio::ssl::error::stream_truncated;
}
}  // namespace

// Shared by the listener and its sessions so that sessions may outlive the http_server object.
// connections is guarded by mutex; each connection's fields are touched only on its worker.
struct http_server::state {
    std::string name;
    std::vector<worker_context> workers;
    tcp::acceptor acceptor;
    std::shared_ptr<const router> routes;
    server_limits limits;
    logger& log;
    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> open{0};
    std::atomic<std::size_t> accepted{0};
    std::atomic<std::size_t> turning_away{0};  // connections over max_connections being answered 503
    std::size_t next_worker = 0;  // accept loop only
    std::mutex mutex;
    std::unordered_set<std::shared_ptr<connection>> connections;
    std::shared_ptr<tls_context> tls;  // null: plain HTTP; shared by every connection (OpenSSL makes it thread-safe)
    std::atomic<std::uint64_t> handshake_failures{0};

    state(std::string n, worker_set w, std::shared_ptr<const router> r, const server_limits& l, logger& lg,
          std::shared_ptr<tls_context> t)
        : name(std::move(n)), workers(w.begin(), w.end()), acceptor(w.front().executor), routes(std::move(r)), limits(l), log(lg),
          tls(std::move(t)) {}
};

namespace {

using state_ptr = std::shared_ptr<http_server::state>;

// Writes an error answer for a request we could not read, then closes.
template <class Stream = beast::tcp_stream>
asio::awaitable<void> reject(connection& c, const http_server::state& s, http::status status, std::string_view detail,
                             std::string_view retry_after = {}) {
    response res = detail_response(status, detail);
    res.keep_alive(false);
    if (!retry_after.empty()) res.set(http::field::retry_after, retry_after);
    res.set(request_id_header, new_request_id());
    res.set(http::field::date, http_date());
    c.stream.expires_after(s.limits.write_timeout);
    if (auto [ec, n] = co_await http::async_write(layer<Stream>(c), res, nothrow); ec) co_return;
    // Closing with unread request bytes would send a reset that can overtake the answer: say we
    // are done, then read and discard what the client still sends, briefly and boundedly (raw
    // bytes, TLS records included: they are dropped either way).
    beast::error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    c.stream.expires_after(s.limits.drain_timeout);
    std::array<char, 4096> sink;
    for (std::size_t total = 0; total < s.limits.max_body_bytes * 16;) {
        auto [ec, n] = co_await c.stream.async_read_some(asio::buffer(sink), nothrow);
        if (ec) break;
        total += n;
    }
}

template <class Stream>
asio::awaitable<void> serve(state_ptr s, std::shared_ptr<connection> c, worker_context worker) {
    constexpr bool plain = std::is_same_v<Stream, beast::tcp_stream>;
    Stream& stream = layer<Stream>(*c);
    beast::flat_buffer buffer;
    std::string wire;  // the response's header bytes; reused across the connection's requests
    const server_limits& lim = s->limits;
    // A new connection's first request must arrive, headers complete, within the header
    // timeout (one that sends nothing is cut by it); keep-alive waits get the idle timeout.
    // On TLS the handshake started that clock (serve_tls).
    if constexpr (plain) c->stream.expires_after(lim.header_timeout);
    bool closing = false;  // the answer said Connection: close and was written
    std::shared_ptr<void> carry;  // request_context::carry
    for (bool first = true;; first = false) {
        if (buffer.size() == 0) {
            // Before the stop check: a stop() during this brief wait skips a busy connection.
            if (carry && !co_await first_bytes_within(c, lim.carry_hold)) carry.reset();
            if (s->stopping.load(std::memory_order_relaxed)) break;
            // Wait for the next request's first bytes. Only this wait is cancelled by stop(): a
            // request that has started arriving is read and answered.
            c->busy = false;
            if (!first) c->stream.expires_after(lim.idle_timeout);
            auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), nothrow);
            if (ec) co_return;
            buffer.commit(n);
        }
        c->busy = true;
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(lim.max_header_bytes));
        parser.body_limit(lim.max_body_bytes);
        if (!first) c->stream.expires_after(lim.header_timeout);
        auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, nothrow);
        if (hec == http::error::header_limit) { co_await reject<Stream>(*c, *s, http::status::request_header_fields_too_large, "Request header fields too large"); co_return; }
        if (hec == http::error::body_limit) { co_await reject<Stream>(*c, *s, http::status::payload_too_large, "Request body too large (limit " + std::to_string(lim.max_body_bytes) + " bytes)"); co_return; }
        if (quiet_end(hec)) co_return;
        if (hec) { co_await reject<Stream>(*c, *s, http::status::bad_request, "Malformed HTTP request"); co_return; }
        if (const auto te = parser.get().find(http::field::transfer_encoding); te != parser.get().end()) {
            // Beast reads a body only when chunked is the last coding, and ignores the others:
            // the rest would be parsed as a next request. Answer and close instead.
            if (const auto verdict = transfer_coding_verdict(te->value()); verdict == http::status::bad_request)
                { co_await reject<Stream>(*c, *s, verdict, "Transfer-Encoding must end with chunked"); co_return; }
            else if (verdict != http::status::ok)
                { co_await reject<Stream>(*c, *s, verdict, "Transfer-Encoding other than chunked is not supported"); co_return; }
        }
        if (!parser.is_done()) {
            if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
                http::response<http::empty_body> cont{http::status::continue_, 11};
                c->stream.expires_after(lim.write_timeout);
                if (auto [ec, n] = co_await http::async_write(stream, cont, nothrow); ec) co_return;
            }
            c->stream.expires_after(lim.body_timeout);
            auto [bec, bn] = co_await http::async_read(stream, buffer, parser, nothrow);
            if (bec == http::error::body_limit) { co_await reject<Stream>(*c, *s, http::status::payload_too_large, "Request body too large (limit " + std::to_string(lim.max_body_bytes) + " bytes)"); co_return; }
            if (quiet_end(bec)) co_return;
            if (bec) { co_await reject<Stream>(*c, *s, http::status::bad_request, "Malformed HTTP request"); co_return; }
        }
        c->stream.expires_never();
        const request req = parser.release();
        request_context ctx{req, {}, {}, {}, worker};
        ctx.carry = &carry;
        if (auto it = req.find(request_id_header); it != req.end() && !it->value().empty() && it->value().size() <= 128)
            ctx.request_id = std::string(it->value());
        else
            ctx.request_id = new_request_id();
        {
            const auto tp = req.find("traceparent");
            ctx.trace = parse_traceparent(tp == req.end() ? std::string_view{} : std::string_view(tp->value()));
            ctx.trace.service = s->name;
        }
        response res = co_await s->routes->dispatch(ctx);
        res.version(req.version());
        res.set(request_id_header, ctx.request_id);
        res.set(http::field::date, http_date());
        res.keep_alive(req.keep_alive() && !s->stopping.load(std::memory_order_relaxed));
        if (!res.has_content_length() && !res.chunked()) res.prepare_payload();
        wire.clear();
        append_wire_header(wire, res);
        c->stream.expires_after(lim.write_timeout);
        // HEAD: the GET answer's header (its Content-Length included) without the body.
        const bool head = req.method() == http::verb::head;
        beast::error_code wec;
        if (head)
            std::tie(wec, std::ignore) = co_await asio::async_write(stream, asio::buffer(wire), nothrow);
        else if (plain || fits_one_tls_record(wire, res))
            std::tie(wec, std::ignore) = co_await asio::async_write(stream, wire_buffers(wire, res), nothrow);
        else if (std::tie(wec, std::ignore) = co_await asio::async_write(stream, asio::buffer(wire), nothrow); !wec)
            std::tie(wec, std::ignore) = co_await asio::async_write(stream, asio::buffer(res.body()), nothrow);
        if (wec) break;
        if (!res.keep_alive()) {
            closing = true;
            break;
        }
        if (ctx.after_response) co_await ctx.after_response();
    }
    if constexpr (!plain) {
        // close_notify, so the client can tell our end from a truncation; the peer's reply (or
        // its close) is awaited briefly.
        if (closing) {
            c->stream.expires_after(lim.drain_timeout);
            auto [sec] = co_await stream.async_shutdown(nothrow);
            (void)sec;
        }
    }
    beast::error_code ignored;
    c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

// A TLS connection: the handshake, bounded by the header timeout (which goes on running until the
// first request's headers are in), then the session loop over TLS. A failed handshake is counted
// and logged, at warn for the listener's first and at debug after (a scanner must not flood the
// log); plain HTTP sent to the port is answered 400 in plain HTTP and closed.
asio::awaitable<void> serve_tls(state_ptr s, std::shared_ptr<connection> c, worker_context worker) {
    c->stream.expires_after(s->limits.header_timeout);
    c->tls = std::make_unique<tls_stream>(c->stream, *s->tls);
    auto [ec] = co_await c->tls->async_handshake(asio::ssl::stream_base::server, nothrow);
    if (!ec) { co_await serve<tls_stream>(std::move(s), std::move(c), worker); co_return; }
    if (ec == asio::error::operation_aborted && s->stopping.load(std::memory_order_relaxed)) co_return;
    const bool plain_http = ec.category() == asio::error::get_ssl_category() && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST;
    const bool first = s->handshake_failures.fetch_add(1, std::memory_order_relaxed) == 0;
    {
        log_event e(s->log, first ? log_level::warn : log_level::debug, "tls_handshake_failed");
        if (e.active()) {
            beast::error_code pec;
            const tcp::endpoint peer = c->stream.socket().remote_endpoint(pec);
            e.with("listener", s->name).with("peer", pec ? std::string("?") : host_port(peer.address().to_string(), peer.port()));
            e.with("error", plain_http ? std::string("plain HTTP request on a TLS port") : ec.message());
        }
    }
    if (plain_http) co_await reject(*c, *s, http::status::bad_request, "This port speaks HTTPS: use an https:// URL");
}

// Connections over max_connections answered at once; beyond, they are closed unanswered.
constexpr std::size_t max_turning_away = 64;

asio::awaitable<void> turn_away(state_ptr s, std::shared_ptr<connection> c) {
    if (!s->tls) { co_await reject(*c, *s, http::status::service_unavailable, "Too many connections", "1"); co_return; }
    c->stream.expires_after(s->limits.header_timeout);
    c->tls = std::make_unique<tls_stream>(c->stream, *s->tls);
    if (auto [ec] = co_await c->tls->async_handshake(asio::ssl::stream_base::server, nothrow); ec) co_return;
    co_await reject<tls_stream>(*c, *s, http::status::service_unavailable, "Too many connections", "1");
}

// The worker that owns the other end when it is one of this process's clients (see
// loopback_affinity), else `fallback`.
std::size_t worker_for(const http_server::state& s, const tcp::socket& socket, std::size_t fallback) {
    const loopback_affinity* affinity = s.workers.front().affinity;  // the workers share one table
    if (!affinity) return fallback;
    beast::error_code ec;
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec || !peer.address().is_loopback()) return fallback;
    const auto w = affinity->worker_of(peer.port());
    return w && *w < s.workers.size() ? *w : fallback;
}

asio::awaitable<void> accept_loop(state_ptr s) {
    for (;;) {
        std::size_t worker = s->next_worker;
        s->next_worker = (s->next_worker + 1) % s->workers.size();
        auto [ec, accepted] = co_await s->acceptor.async_accept(s->workers[worker].executor, nothrow);
        if (ec == asio::error::operation_aborted || s->stopping) co_return;
        if (ec) {
            // Out of descriptors and similar: report, pause briefly so we do not spin, go on.
            log_event(s->log, log_level::error, "accept_failed").with("listener", s->name).with("error", ec.message());
            asio::steady_timer pause(s->acceptor.get_executor(), s->limits.idle_timeout / 300);
            co_await pause.async_wait(nothrow);
            continue;
        }
        tcp::socket socket(std::move(accepted));
        if (s->open.load() >= s->limits.max_connections) {
            // Over the limit: answer 503 + Retry-After and close rather than reset. A flood of
            // these is bounded too: beyond max_turning_away at once they are closed unanswered.
            if (s->turning_away.fetch_add(1) >= max_turning_away) {
                s->turning_away.fetch_sub(1);
                beast::error_code ignored;
                socket.close(ignored);
                continue;
            }
            auto c = std::make_shared<connection>(std::move(socket));
            asio::co_spawn(s->workers[worker].executor, turn_away(s, c), [s, c](const std::exception_ptr&) { s->turning_away.fetch_sub(1); });
            continue;
        }
        if (const std::size_t owner = worker_for(*s, socket, worker); owner != worker) {
            // Re-home the descriptor on the owner's io_context (release() deregisters it here).
            const auto protocol = socket.local_endpoint(ec).protocol();
            if (!ec) {
                const auto fd = socket.release(ec);
                if (ec) continue;  // cannot happen on Linux; the socket is unusable either way
                tcp::socket rehomed(s->workers[owner].executor);
                if (rehomed.assign(protocol, fd, ec); ec) {  // never throw here: it would end the accept loop
                    ::close(fd);
                    continue;
                }
                socket = std::move(rehomed);
                worker = owner;
            }
        }
        socket.set_option(tcp::no_delay(true), ec);
        const worker_context& worker_ctx = s->workers[worker];
        auto c = std::make_shared<connection>(std::move(socket));
        {
            std::lock_guard lock(s->mutex);
            s->connections.insert(c);
        }
        s->open.fetch_add(1);
        s->accepted.fetch_add(1);
        asio::co_spawn(worker_ctx.executor, s->tls ? serve_tls(s, c, worker_ctx) : serve<beast::tcp_stream>(s, c, worker_ctx), [s, c](const std::exception_ptr& e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    log_event(s->log, log_level::error, "session_crashed").with("listener", s->name).with("error", ex.what());
                }
            }
            {
                std::lock_guard lock(s->mutex);
                s->connections.erase(c);
            }
            s->open.fetch_sub(1);
        });
    }
}

}  // namespace

http_server::http_server(std::string name, worker_set workers, const std::string& host, std::uint16_t port,
                         std::shared_ptr<const router> routes, const server_limits& limits, logger& log,
                         std::shared_ptr<tls_context> tls)
    : state_(std::make_shared<state>(std::move(name), workers, std::move(routes), limits, log, std::move(tls))) {
    for (std::size_t i = 0; i < workers.size(); ++i)
        if (workers[i].index != i) throw std::invalid_argument("http_server " + state_->name + ": workers out of index order");
    const std::string where = host_port(host, port);
    beast::error_code ec;
    tcp::resolver resolver(workers.front().executor);
    auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) throw std::runtime_error("cannot listen on " + where + ": cannot resolve host (" + ec.message() + ")");
    const tcp::endpoint ep = results.begin()->endpoint();
    auto& acc = state_->acceptor;
    if (acc.open(ep.protocol(), ec); ec) throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
    acc.set_option(asio::socket_base::reuse_address(true), ec);
    if (acc.bind(ep, ec); ec) throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
    if (acc.listen(asio::socket_base::max_listen_connections, ec); ec)
        throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
}

http_server::~http_server() { stop(); }

std::uint16_t http_server::port() const noexcept {
    beast::error_code ec;
    return state_->acceptor.local_endpoint(ec).port();
}

const std::string& http_server::name() const noexcept { return state_->name; }

void http_server::start() { asio::co_spawn(state_->acceptor.get_executor(), accept_loop(state_), asio::detached); }

void http_server::stop() {
    if (state_->stopping.exchange(true)) return;
    asio::post(state_->acceptor.get_executor(), [s = state_] {
        beast::error_code ignored;
        s->acceptor.close(ignored);
    });
    std::lock_guard lock(state_->mutex);
    for (const auto& c : state_->connections) {
        asio::post(c->stream.get_executor(), [c] {
            if (!c->busy) c->stream.cancel();
        });
    }
}

std::size_t http_server::open_connections() const noexcept { return state_->open.load(); }

std::size_t http_server::accepted_connections() const noexcept { return state_->accepted.load(); }

bool http_server::tls() const noexcept { return state_->tls != nullptr; }

std::uint64_t http_server::tls_handshake_failures() const noexcept { return state_->handshake_failures.load(std::memory_order_relaxed); }

}  // namespace offerd
