// Request framing rules that Beast 1.81's parser does not enforce (request smuggling). The server
// refuses, with 400 and a closed connection, every request for which framing_problem() gives a
// reason.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace emporium {

// The reason the request's framing is refused (never quoting header values), or nullopt if it is
// acceptable: at most one Content-Length, Transfer-Encoding and Host each, never CL and TE both, a
// Transfer-Encoding of exactly `chunked`, and chunked only with HTTP/1.1 or later.
std::optional<std::string> framing_problem(
    const boost::beast::http::request<boost::beast::http::string_body>& req);

// The same for the raw header block as received (request line and fields, up to the blank
// line): obsolete line folding, which Beast 1.81 would silently unfold, is refused.
std::optional<std::string> header_block_problem(std::string_view block);

}  // namespace emporium
