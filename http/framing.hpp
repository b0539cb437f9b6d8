// Request framing rules that Beast 1.81's parser does not enforce (request smuggling). The server
// refuses, with 400 and a closed connection, every request for which framing_problem() gives a
// reason.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "http/message.hpp"

namespace emporium {

// The reason the request's framing is refused (never quoting header values), or nullopt if it is
// acceptable: at most one Content-Length, Transfer-Encoding and Host each (and a Host in
// HTTP/1.1), never CL and TE both, a Transfer-Encoding of exactly `chunked`, and chunked only
// with HTTP/1.1 or later.
std::optional<std::string> framing_problem(
    const boost::beast::http::request<boost::beast::http::string_body>& req);

// The same for the raw header block as received (request line and fields, up to the blank
// line), or for as much of it as has come: obsolete line folding, which Beast 1.81 would silently
// unfold, and a line ended by LF alone are refused.
std::optional<std::string> header_block_problem(std::string_view block);

// Whether the request line of `block` (the header block as received, or its start) names a
// well-formed HTTP version other than 1.0 and 1.1: answered 505, which Beast's parser would take
// for malformed.
bool unsupported_version(std::string_view block);

// The answer's bytes as HTTP/1.1, written in one piece: the bytes Beast's serializer writes for a
// response with `Server: emporium`, the content type, the answer's headers (a name given twice
// keeps its last value; values trimmed of spaces and tabs), `Connection: close` unless
// `keep_alive`, and the body's length. Unlike Beast: an answer's own `Connection` header is
// dropped (the node sets none); a 1xx, 204 or 304 has no length and no body (RFC 9110 §8.6); and
// a CR or LF in a header value becomes a space, so no value can start a field or an answer of its
// own. The answer to a HEAD request (`head`) has the fields of the same answer to a GET,
// Content-Length included, and no body (RFC 9110 §9.3.2).
std::string render_response(const HttpResponse& res, bool keep_alive, bool head = false);

}  // namespace emporium
