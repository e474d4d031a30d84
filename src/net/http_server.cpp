// The listener and the per-connection session loop.
#include "offerd/net/http_server.hpp"

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <mutex>
#include <stdexcept>
#include <unistd.h>
#include <unordered_set>
#include <vector>

#include "offerd/net/loopback_affinity.hpp"
#include "offerd/obs/log.hpp"

namespace offerd {

using tcp = asio::ip::tcp;

namespace {
struct connection {
    explicit connection(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    bool busy = false;  // a request is arriving or being handled; only touched on the connection's worker
};
}  // namespace

// Shared by the listener and its sessions so that sessions may outlive the http_server object.
// connections is guarded by mutex; each connection's fields are touched only on its worker.
struct http_server::state {
    std::string name;
    std::vector<asio::io_context*> workers;
    tcp::acceptor acceptor;
    std::shared_ptr<const router> routes;
    server_limits limits;
    logger& log;
    const loopback_affinity* affinity;
    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> open{0};
    std::atomic<std::size_t> accepted{0};
    std::atomic<std::size_t> turning_away{0};  // connections over max_connections being answered 503
    std::size_t next_worker = 0;  // accept loop only
    std::mutex mutex;
    std::unordered_set<std::shared_ptr<connection>> connections;

    state(std::string n, std::span<asio::io_context* const> w, std::shared_ptr<const router> r,
          const server_limits& l, logger& lg, const loopback_affinity* a)
        : name(std::move(n)), workers(w.begin(), w.end()), acceptor(*w.front()), routes(std::move(r)), limits(l), log(lg), affinity(a) {}
};

namespace {

using state_ptr = std::shared_ptr<http_server::state>;

// Writes an error answer for a request we could not read, then closes.
asio::awaitable<void> reject(connection& c, const http_server::state& s, http::status status, std::string_view detail,
                             std::string_view retry_after = {}) {
    response res = detail_response(status, detail);
    res.keep_alive(false);
    if (!retry_after.empty()) res.set(http::field::retry_after, retry_after);
    res.set(request_id_header, new_request_id());
    res.set(http::field::date, http_date());
    c.stream.expires_after(s.limits.write_timeout);
    if (auto [ec, n] = co_await http::async_write(c.stream, res, nothrow); ec) co_return;
    // Closing with unread request bytes would send a reset that can overtake the answer: say we
    // are done, then read and discard what the client still sends, briefly and boundedly.
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

asio::awaitable<void> serve(state_ptr s, std::shared_ptr<connection> c, std::size_t worker) {
    beast::flat_buffer buffer;
    std::string wire;  // the response's header bytes; reused across the connection's requests
    const server_limits& lim = s->limits;
    // A new connection's first request must arrive, headers complete, within the header
    // timeout (one that sends nothing is cut by it); keep-alive waits get the idle timeout.
    c->stream.expires_after(lim.header_timeout);
    for (bool first = true;; first = false) {
        if (buffer.size() == 0) {
            if (s->stopping.load(std::memory_order_relaxed)) break;
            // Wait for the next request's first bytes. Only this wait is cancelled by stop(): a
            // request that has started arriving is read and answered.
            c->busy = false;
            if (!first) c->stream.expires_after(lim.idle_timeout);
            auto [ec, n] = co_await c->stream.async_read_some(buffer.prepare(4096), nothrow);
            if (ec) co_return;
            buffer.commit(n);
        }
        c->busy = true;
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(lim.max_header_bytes));
        parser.body_limit(lim.max_body_bytes);
        if (!first) c->stream.expires_after(lim.header_timeout);
        auto [hec, hn] = co_await http::async_read_header(c->stream, buffer, parser, nothrow);
        if (hec == http::error::header_limit) co_return co_await reject(*c, *s, http::status::request_header_fields_too_large, "Request header fields too large");
        if (hec == http::error::body_limit) co_return co_await reject(*c, *s, http::status::payload_too_large, "Request body too large (limit " + std::to_string(lim.max_body_bytes) + " bytes)");
        if (hec == beast::error::timeout || hec == http::error::end_of_stream || hec == asio::error::eof ||
            hec == asio::error::operation_aborted)
            co_return;
        if (hec) co_return co_await reject(*c, *s, http::status::bad_request, "Malformed HTTP request");
        if (const auto te = parser.get().find(http::field::transfer_encoding); te != parser.get().end()) {
            // Beast reads a body only when chunked is the last coding, and ignores the others:
            // the rest would be parsed as a next request. Answer and close instead.
            if (const auto verdict = transfer_coding_verdict(te->value()); verdict == http::status::bad_request)
                co_return co_await reject(*c, *s, verdict, "Transfer-Encoding must end with chunked");
            else if (verdict != http::status::ok)
                co_return co_await reject(*c, *s, verdict, "Transfer-Encoding other than chunked is not supported");
        }
        if (!parser.is_done()) {
            if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
                http::response<http::empty_body> cont{http::status::continue_, 11};
                c->stream.expires_after(lim.write_timeout);
                if (auto [ec, n] = co_await http::async_write(c->stream, cont, nothrow); ec) co_return;
            }
            c->stream.expires_after(lim.body_timeout);
            auto [bec, bn] = co_await http::async_read(c->stream, buffer, parser, nothrow);
            if (bec == http::error::body_limit) co_return co_await reject(*c, *s, http::status::payload_too_large, "Request body too large (limit " + std::to_string(lim.max_body_bytes) + " bytes)");
            if (bec == beast::error::timeout || bec == http::error::end_of_stream || bec == asio::error::eof ||
                bec == asio::error::operation_aborted)
                co_return;
            if (bec) co_return co_await reject(*c, *s, http::status::bad_request, "Malformed HTTP request");
        }
        c->stream.expires_never();
        const request req = parser.release();
        request_context ctx{req, {}, {}, {}, worker};
        if (auto it = req.find(request_id_header); it != req.end() && !it->value().empty() && it->value().size() <= 128)
            ctx.request_id = std::string(it->value());
        else
            ctx.request_id = new_request_id();
        {
            const auto tp = req.find("traceparent");
            ctx.trace = parse_traceparent(tp == req.end() ? std::string_view{} : std::string_view(tp->value()));
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
        auto [wec, wn] = head ? co_await asio::async_write(c->stream, asio::buffer(wire), nothrow)
                              : co_await asio::async_write(c->stream, wire_buffers(wire, res), nothrow);
        if (wec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

// Connections over max_connections answered at once; beyond, they are closed unanswered.
constexpr std::size_t max_turning_away = 64;

asio::awaitable<void> turn_away(state_ptr s, std::shared_ptr<connection> c) {
    co_await reject(*c, *s, http::status::service_unavailable, "Too many connections", "1");
}

// The worker that owns the other end when it is one of this process's clients (see
// loopback_affinity), else `fallback`.
std::size_t worker_for(const http_server::state& s, const tcp::socket& socket, std::size_t fallback) {
    if (!s.affinity) return fallback;
    beast::error_code ec;
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec || !peer.address().is_loopback()) return fallback;
    const auto w = s.affinity->worker_of(peer.port());
    return w && *w < s.workers.size() ? *w : fallback;
}

asio::awaitable<void> accept_loop(state_ptr s) {
    for (;;) {
        std::size_t worker = s->next_worker;
        s->next_worker = (s->next_worker + 1) % s->workers.size();
        auto [ec, accepted] = co_await s->acceptor.async_accept(*s->workers[worker], nothrow);
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
            asio::co_spawn(*s->workers[worker], turn_away(s, c), [s, c](const std::exception_ptr&) { s->turning_away.fetch_sub(1); });
            continue;
        }
        if (const std::size_t owner = worker_for(*s, socket, worker); owner != worker) {
            // Re-home the descriptor on the owner's io_context (release() deregisters it here).
            const auto protocol = socket.local_endpoint(ec).protocol();
            if (!ec) {
                const auto fd = socket.release(ec);
                if (ec) continue;  // cannot happen on Linux; the socket is unusable either way
                tcp::socket rehomed(*s->workers[owner]);
                if (rehomed.assign(protocol, fd, ec); ec) {  // never throw here: it would end the accept loop
                    ::close(fd);
                    continue;
                }
                socket = std::move(rehomed);
                worker = owner;
            }
        }
        socket.set_option(tcp::no_delay(true), ec);
        asio::io_context& worker_ctx = *s->workers[worker];
        auto c = std::make_shared<connection>(std::move(socket));
        {
            std::lock_guard lock(s->mutex);
            s->connections.insert(c);
        }
        s->open.fetch_add(1);
        s->accepted.fetch_add(1);
        asio::co_spawn(worker_ctx, serve(s, c, worker), [s, c](const std::exception_ptr& e) {
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

http_server::http_server(std::string name, std::span<asio::io_context* const> workers, const std::string& host,
                         std::uint16_t port, std::shared_ptr<const router> routes, const server_limits& limits,
                         logger& log, const loopback_affinity* affinity)
    : state_(std::make_shared<state>(std::move(name), workers, std::move(routes), limits, log, affinity)) {
    const std::string where = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    beast::error_code ec;
    tcp::resolver resolver(*workers.front());
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

}  // namespace offerd
