/**
 * lamina's Node.js runtime: runs INSIDE the function's environment as `node bootstrap.mjs`
 * (cwd = LAMBDA_TASK_ROOT), with AWS's environment variables, and speaks the Lambda Runtime API
 * (2018-06-01) at AWS_LAMBDA_RUNTIME_API over HTTP.  Node built-ins only.
 *
 * Behaviour mirrors AWS's runtime interface client (aws-lambda-nodejs-runtime-interface-client,
 * the JavaScript 3.x line that backs nodejs18.x-22.x) so functions see what they see on AWS:
 *   - handler loading and its Runtime.* init errors ........ UserFunction.js, Errors.js
 *   - console patching, text and JSON log lines ............ LogPatch.js
 *   - callback / context.succeed/fail/done, waiting for
 *     an empty event loop (the beforeExit hook) ............ CallbackContext.js, BeforeExitListener.js
 *   - the invoke loop, uncaught errors, exit codes ......... Runtime.js, index.mjs
 *   - the context object, _X_AMZN_TRACE_ID .................. InvokeContext.js
 *   - error bodies and headers .............................. Errors.js (toRapidResponse), RAPIDClient.js
 *   - callback handlers: a warning before nodejs24.x, an init error (Runtime.CallbackHandlerDeprecated)
 *     from nodejs24.x on .................................... WarningForCallbackHandlers.js,
 *                                                              function/callback-deprecation.ts
 *   - awslambda.streamifyResponse / HttpResponseStream: the response is streamed to the Runtime
 *     API as it is written (a chunked POST in streaming mode; an error after the first byte goes
 *     in trailers, as the RIC's ResponseStream.js does) ... UserFunction.js, HttpResponseStream.js
 *
 * The RIC posts results with a blocking native client; this one has a minimal HTTP/1.1 client
 * of its own over `net` (one persistent TCP_NODELAY connection, each request one write, answers
 * parsed as they arrive): one request at a time on one connection, a new connection if the last
 * was closed.  (`http.request` on a keep-alive Agent cost ~180 us more CPU per warm invoke.)
 * The warm path per invoke is the POST of the result, then the GET of the next event.  Fatal
 * paths (uncaught errors, init errors) post on a fresh connection so they never queue behind an
 * in-flight GET.
 */

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import util from 'node:util';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';

const require = createRequire(import.meta.url);
const env = process.env;

// ------------------------------------------------------------------------------------ errors
// Errors.js

function isErrorLike(obj) {
  return (
    obj &&
    obj.name &&
    obj.message &&
    obj.stack &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string'
  );
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** The body AWS posts for an error (Errors.js: toRapidResponse). */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name?.replaceAll('\x7F', '%7F'),
        errorMessage: error.message?.replaceAll('\x7F', '%7F'),
        trace: error.stack.replaceAll('\x7F', '%7F').split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch (_err) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function withEnumerableProperties(error) {
  if (error instanceof Error) {
    const ret = Object.assign(
      { errorType: error.name, errorMessage: error.message, code: error.code },
      error,
    );
    if (typeof error.stack == 'string') {
      ret.stack = error.stack.split('\n');
    }
    return ret;
  }
  return error;
}

/** An error as the text log lines show it; always starts with a tab (Errors.js: toFormatted). */
function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => withEnumerableProperties(v));
  } catch (_err) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class MalformedStreamingHandler extends Error {}
class InvalidStreamingOperation extends Error {}
class CallbackHandlerDeprecated extends Error {}
class NodeJsExit extends Error {
  constructor() {
    super(
      'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled. For more information, see https://nodejs.org/docs/latest/api/process.html#exit-codes',
    );
  }
}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const cls of [
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  MalformedStreamingHandler,
  InvalidStreamingOperation,
  CallbackHandlerDeprecated,
  NodeJsExit,
  UnhandledPromiseRejection,
]) {
  cls.prototype.name = `Runtime.${cls.name}`;
}

// --------------------------------------------------------------------------------- log patch
// LogPatch.js: every console method writes one line per call; inner newlines become \r.

const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const setRequestId = (id) => (globalThis[REQUEST_ID] = id);

const LEVELS = Object.freeze({
  TRACE: { name: 'TRACE', priority: 1 },
  DEBUG: { name: 'DEBUG', priority: 2 },
  INFO: { name: 'INFO', priority: 3 },
  WARN: { name: 'WARN', priority: 4 },
  ERROR: { name: 'ERROR', priority: 5 },
  FATAL: { name: 'FATAL', priority: 6 },
});

const jsonErrorReplacer = (_, value) => {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
};

function formatJsonMessage(requestId, timestamp, level, ...messageParams) {
  const result = { timestamp: timestamp, level: level.name, requestId: requestId };
  if (messageParams.length === 1) {
    result.message = messageParams[0];
    try {
      return JSON.stringify(result, jsonErrorReplacer);
    } catch (_) {
      result.message = util.format(result.message);
      return JSON.stringify(result);
    }
  }
  result.message = util.format(...messageParams);
  for (const param of messageParams) {
    if (param instanceof Error) {
      result.errorType = param?.constructor?.name ?? 'UnknownError';
      result.errorMessage = param.message;
      result.stackTrace = typeof param.stack === 'string' ? param.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(result);
}

const stdout = process.stdout;

function logText(level, message, ...params) {
  const line = `${new Date().toISOString()}\t${globalThis[REQUEST_ID]}\t${level.name}\t${util.format(
    message,
    ...params,
  )}`;
  stdout.write(line.replace(/\n/g, '\r') + '\n');
}

function logJson(level, message, ...params) {
  const line = formatJsonMessage(
    globalThis[REQUEST_ID],
    new Date().toISOString(),
    level,
    message,
    ...params,
  );
  stdout.write(line.replace(/\n/g, '\r') + '\n');
}

/** Logs an error the way the RIC does ('Invoke Error', 'Uncaught Exception', ...). */
let logError = (msg, err) => console.error(msg, toFormatted(intoError(err)));

function patchConsole() {
  const json = env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === 'JSON';
  const log = json ? logJson : logText;
  const minimum = LEVELS[env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase()] ?? LEVELS.TRACE;
  const nop = (_message, ..._params) => {};
  const method = (level) =>
    level.priority >= minimum.priority ? (msg, ...params) => log(level, msg, ...params) : nop;
  console.trace = method(LEVELS.TRACE);
  console.debug = method(LEVELS.DEBUG);
  console.info = method(LEVELS.INFO);
  console.log = console.info;
  console.warn = method(LEVELS.WARN);
  console.error = method(LEVELS.ERROR);
  console.fatal = (msg, ...params) => log(LEVELS.FATAL, msg, ...params);
  if (json) {
    logError = (_, err) => console.error(intoError(err));
  }
}

// ------------------------------------------------------------------------------ runtime API
// RAPIDClient.js, over a minimal HTTP/1.1 client (below) on one persistent connection.

const API = env.AWS_LAMBDA_RUNTIME_API || '';
const API_HOST = API.slice(0, API.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
const API_PORT = parseInt(API.slice(API.lastIndexOf(':') + 1), 10);
const BASE = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

// The constant parts of every request: what follows the path (the Host header as http.request
// writes it), the JSON content headers, the whole GET next.
const REQUEST_TAIL = ` HTTP/1.1\r\nHost: ${API_HOST.includes(':') ? `[${API_HOST}]` : API_HOST}${
  API_PORT === 80 ? '' : `:${API_PORT}`
}\r\n`;
const JSON_CONTENT = 'Content-Type: application/json\r\nContent-Length: ';
const NEXT_REQUEST = Buffer.from(`GET ${BASE}/invocation/next${REQUEST_TAIL}\r\n`, 'latin1');
const INVOCATION_POST = `POST ${BASE}/invocation/`;
const INIT_ERROR_PATH = `${BASE}/init/error`;

// ----------------------------------------------------------------------------- HTTP/1.1 client
// One request at a time in practice (the API is strictly request/answer), but answers are matched
// to requests in order, so pipelined requests and several answers in one read work too.  A read
// lands in a fixed buffer (net's `onread`): an answer that fits in one read is parsed in place,
// without copies; bytes that must outlive the read (an incomplete head, a body spanning reads) are
// copied out.  Framing: Content-Length, chunked, or (no length) up to the close; 1xx answers are
// skipped; 204 and 304 have no body.  An idle socket is unref'd, as the Agent does with a free
// socket, so an empty event loop still ends an invocation (beforeExit).

const HEAD = 0; // the status line and headers, up to the blank line
const FIXED = 1; // `left` bytes of Content-Length body
const CHUNK_SIZE = 2; // a chunk-size line
const CHUNK_DATA = 3; // `left` bytes of chunk data
const CHUNK_END = 4; // the CRLF after chunk data
const TRAILERS = 5; // trailer lines, up to the blank line
const TO_CLOSE = 6; // a body without a length: everything up to the close

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const LF = 0x0a;
const MAX_HEAD = 256 * 1024;
// Headers of which http.IncomingMessage keeps only the first of several.
const SINGLE_HEADERS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]); // prettier-ignore

/** A response's headers by lower-case name: no inherited properties (a header may be called `constructor`). */
function Headers() {}
Headers.prototype = Object.create(null);

function hangUp() {
  const err = new Error('socket hang up');
  err.code = 'ECONNRESET';
  return err;
}

function parseError(reason) {
  const err = new Error(`Parse Error: ${reason}`);
  err.code = 'HPE_INVALID_RESPONSE';
  return err;
}

/**
 * One connection to the Runtime API.  `send(data, request)` writes a whole request (head and body
 * in one write); `request.done(err, status, headers, body)` is called once its answer has been
 * read (body: a string if `request.body`, else undefined) or the connection failed first.
 */
class Connection {
  constructor(keepAlive, buffer) {
    this.keepAlive = keepAlive;
    this.waiting = []; // requests written whose answers have not been read, oldest first
    this.closed = false;
    this.state = HEAD;
    this.carry = null; // bytes of an incomplete head or line, copied out of the read buffer
    this.status = 0;
    this.headers = null;
    this.left = 0;
    this.parts = null; // body bytes read so far, when the body spans reads
    this.closeAfter = false;
    const socket = net.connect({
      host: API_HOST,
      port: API_PORT,
      noDelay: true,
      onread: { buffer, callback: (n, buf) => this.read(buf, n) },
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('end', () => this.end());
    socket.on('close', () => this.fail(null));
    this.socket = socket;
  }

  send(data, request) {
    if (this.waiting.length === 0) this.socket.ref();
    this.waiting.push(request);
    this.socket.write(data);
  }

  /** A request with a Buffer body: the head (latin1, as http writes headers) and body in one writev. */
  sendBuffer(head, body, request) {
    if (this.waiting.length === 0) this.socket.ref();
    this.waiting.push(request);
    const socket = this.socket;
    socket.cork();
    socket.write(head, 'latin1');
    if (body.length) socket.write(body);
    socket.uncork();
  }

  /** The head of a request whose body follows in pieces (`write`), then `finish` it.  The socket
   * stays unref'd until then: the invocation's "empty event loop" must still be reachable. */
  begin(head) {
    this.socket.write(head, 'latin1');
  }

  write(data) {
    this.socket.write(data);
  }

  /** The last bytes of a request begun with `begin`; its answer goes to `request`. */
  finish(tail, request) {
    if (this.waiting.length === 0) this.socket.ref();
    this.waiting.push(request);
    this.socket.write(tail, 'latin1');
  }

  read(chunk, n) {
    let buf = chunk;
    let end = n;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk.subarray(0, n)]);
      end = buf.length;
      this.carry = null;
    }
    let pos = 0;
    while (pos < end && !this.closed) {
      switch (this.state) {
        case HEAD: {
          const at = buf.indexOf(HEAD_END, pos);
          // (buf may be the fixed read buffer: a match at or past `end` is stale bytes)
          if (at === -1 || at + 4 > end) return this.keep(buf, pos, end);
          const ok = this.head(buf.latin1Slice(pos, at));
          pos = at + 4;
          if (!ok) return;
          break;
        }
        case FIXED: {
          const take = Math.min(this.left, end - pos);
          if (this.parts === null && take === this.left) {
            // the whole body is here: decode it in place
            const start = pos;
            pos += take;
            this.complete(this.waiting[0]?.body ? buf.utf8Slice(start, pos) : undefined);
          } else {
            this.collect(buf, pos, pos + take);
            pos += take;
            this.left -= take;
            if (this.left === 0) this.complete(this.body());
          }
          break;
        }
        case CHUNK_SIZE:
        case CHUNK_END:
        case TRAILERS: {
          const lf = buf.indexOf(LF, pos);
          if (lf === -1 || lf >= end) return this.keep(buf, pos, end);
          const line = buf.latin1Slice(pos, lf > pos && buf[lf - 1] === 0x0d ? lf - 1 : lf);
          pos = lf + 1;
          this.line(line);
          break;
        }
        case CHUNK_DATA: {
          const take = Math.min(this.left, end - pos);
          this.collect(buf, pos, pos + take);
          pos += take;
          this.left -= take;
          if (this.left === 0) this.state = CHUNK_END;
          break;
        }
        case TO_CLOSE:
          this.collect(buf, pos, end);
          pos = end;
          break;
      }
    }
  }

  /** Bytes of an incomplete head or line: kept (copied) until the next read. */
  keep(buf, pos, end) {
    if (end - pos > MAX_HEAD) {
      this.fail(parseError('Header overflow'));
      return;
    }
    this.carry = Buffer.from(buf.subarray(pos, end));
  }

  /** Body bytes that span reads (only kept if the request wants the body). */
  collect(buf, from, to) {
    if (from === to || !this.waiting[0]?.body) return;
    (this.parts ??= []).push(Buffer.from(buf.subarray(from, to)));
  }

  body() {
    if (!this.waiting[0]?.body) return undefined;
    const parts = this.parts;
    return parts === null ? '' : (parts.length === 1 ? parts[0] : Buffer.concat(parts)).toString('utf8');
  }

  /** The status line and headers (latin1, without the blank line); false on a protocol error. */
  head(text) {
    let eol = text.indexOf('\r\n');
    if (eol === -1) eol = text.length;
    const minor = text.charCodeAt(7);
    const d0 = text.charCodeAt(9) - 48;
    const d1 = text.charCodeAt(10) - 48;
    const d2 = text.charCodeAt(11) - 48;
    if (
      !text.startsWith('HTTP/1.') ||
      (minor !== 0x30 && minor !== 0x31) ||
      text.charCodeAt(8) !== 0x20 ||
      !(d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) ||
      (eol > 12 && text.charCodeAt(12) !== 0x20)
    ) {
      this.fail(parseError('Expected HTTP/'));
      return false;
    }
    const status = d0 * 100 + d1 * 10 + d2;
    const headers = new Headers();
    let length = -1;
    let chunked = false;
    let encoded = false;
    let connection = '';
    for (let at = eol + 2; at < text.length; ) {
      let next = text.indexOf('\r\n', at);
      if (next === -1) next = text.length;
      const colon = text.indexOf(':', at);
      if (colon === -1 || colon > next || colon === at) {
        this.fail(parseError('Invalid header token'));
        return false;
      }
      const name = text.slice(at, colon).toLowerCase();
      const value = text.slice(colon + 1, next).trim();
      at = next + 2;
      if (name === 'content-length') {
        if (!/^\d+$/.test(value) || (length !== -1 && length !== +value)) {
          this.fail(parseError('Invalid Content-Length'));
          return false;
        }
        length = +value;
      } else if (name === 'transfer-encoding') {
        encoded = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
      } else if (name === 'connection') {
        connection = value.toLowerCase();
      }
      const prior = headers[name];
      if (prior === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
      else if (name === 'set-cookie') prior.push(value);
      else if (!SINGLE_HEADERS.has(name)) headers[name] = `${prior}, ${value}`;
    }
    if (status < 200 && status !== 101) return true; // informational: the answer is still to come
    this.status = status;
    this.headers = headers;
    this.closeAfter =
      !this.keepAlive ||
      status === 101 ||
      /(?:^|,)\s*close\s*(?:,|$)/.test(connection) ||
      (minor === 0x30 && !/(?:^|,)\s*keep-alive\s*(?:,|$)/.test(connection));
    if (status === 204 || status === 304 || status === 101) {
      this.complete(undefined);
    } else if (chunked) {
      this.state = CHUNK_SIZE;
    } else if (encoded || length === -1) {
      this.state = TO_CLOSE;
      this.closeAfter = true;
    } else if (length === 0) {
      this.complete(this.waiting[0]?.body ? '' : undefined);
    } else {
      this.state = FIXED;
      this.left = length;
    }
    return true;
  }

  /** A line of a chunked body: a chunk size, the CRLF after a chunk's data, or a trailer. */
  line(text) {
    if (this.state === CHUNK_SIZE) {
      const match = /^([0-9a-fA-F]+)[\t ]*(?:;.*)?$/.exec(text);
      if (match === null) {
        this.fail(parseError('Invalid character in chunk size'));
        return;
      }
      this.left = parseInt(match[1], 16);
      this.state = this.left === 0 ? TRAILERS : CHUNK_DATA;
    } else if (this.state === CHUNK_END) {
      if (text !== '') this.fail(parseError('Expected LF after chunk data'));
      else this.state = CHUNK_SIZE;
    } else if (text === '') {
      this.complete(this.body()); // TRAILERS: the blank line ends the body
    }
  }

  /** The answer at the head of the queue is complete: hand it over. */
  complete(body) {
    const request = this.waiting.shift();
    const status = this.status;
    const headers = this.headers;
    this.state = HEAD;
    this.headers = null;
    this.parts = null;
    let rest = null;
    if (this.closeAfter) {
      this.closed = true;
      this.socket.destroy();
      rest = this.waiting;
      this.waiting = [];
    } else if (this.waiting.length === 0) {
      this.socket.unref();
    }
    if (request !== undefined) request.done(null, status, headers, body);
    if (rest !== null) for (const other of rest) other.done(hangUp());
  }

  /** The peer closed its side: ends a body read to the close; anything else waiting failed. */
  end() {
    if (!this.closed && this.state === TO_CLOSE && this.waiting.length) {
      this.complete(this.body());
    }
    this.fail(null);
  }

  fail(err) {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    const waiting = this.waiting;
    this.waiting = [];
    for (const request of waiting) request.done(err || hangUp());
  }
}

const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
let connection = null;

/** The persistent connection; a new one if the last was closed (reconnects between requests). */
function live() {
  if (connection === null || connection.closed) connection = new Connection(true, READ_BUFFER);
  return connection;
}

function send(data, request) {
  live().send(data, request);
}

/** GET the next invocation: done(err, bodyJson, headers). */
function nextRequest(done) {
  return {
    body: true,
    done: (err, status, headers, body) => {
      if (err) {
        done(err);
      } else if (status !== 200) {
        done(new Error(`Failed to get next invocation, HTTP ${status}: ${body}`));
      } else {
        done(null, body, headers);
      }
    },
  };
}

function nextInvocation(request) {
  send(NEXT_REQUEST, request);
}

/** A POST's request: then() once the answer has been read, whatever it was (status unused). */
let lastPost = { body: false, done: null };
function postRequest(then) {
  if (lastPost.done !== then) lastPost = { body: false, done: then };
  return lastPost;
}

function serialize(body) {
  try {
    return JSON.stringify(body === undefined ? null : body);
  } catch (_err) {
    throw new Error('Unable to stringify response body');
  }
}

/** A header value Node will send: control and non-ASCII characters percent-encoded. */
function headerValue(value) {
  const text = String(value);
  return /^[\t\x20-\x7e]*$/.test(text) ? text : text.replace(/[^\t\x20-\x7e]/g, (c) => encodeURIComponent(c));
}

/** An error's body and Lambda-Runtime-Function-Error-Type header line. */
function errorBody(error) {
  const response = toRapidResponse(error);
  return { body: serialize(response), header: `${ERROR_TYPE_HEADER}: ${headerValue(response.errorType)}\r\n` };
}

const invocationPath = (id, what) => `${BASE}/invocation/${encodeURIComponent(id)}/${what}`;

/** The result of an invocation; serialization errors throw here, synchronously, as in the RIC. */
function postInvocationResponse(result, id, callback) {
  const body = serialize(result);
  send(
    `${INVOCATION_POST}${encodeURIComponent(id)}/response${REQUEST_TAIL}${JSON_CONTENT}${Buffer.byteLength(body)}\r\n\r\n${body}`,
    postRequest(callback),
  );
}

function postInvocationError(error, id, callback) {
  const { body, header } = errorBody(error);
  send(
    `${INVOCATION_POST}${encodeURIComponent(id)}/error${REQUEST_TAIL}${JSON_CONTENT}${Buffer.byteLength(body)}\r\n${header}\r\n${body}`,
    postRequest(callback),
  );
}

/** Node's checks of a header value (http.validateHeaderValue): the same errors, thrown synchronously. */
function contentTypeLines(value) {
  const values = Array.isArray(value) ? value : [value];
  let lines = '';
  for (const one of values) {
    if (one === undefined) {
      const err = new TypeError(`Invalid value "${one}" for header "Content-Type"`);
      err.code = 'ERR_HTTP_INVALID_HEADER_VALUE';
      throw err;
    }
    if (/[^\t\x20-\x7e\x80-\xff]/.test(String(one))) {
      const err = new TypeError('Invalid character in header content ["Content-Type"]');
      err.code = 'ERR_INVALID_CHAR';
      throw err;
    }
    lines += `Content-Type: ${one}\r\n`;
  }
  return lines;
}

// ------------------------------------------------------------------------------ fatal paths
// index.mjs / Runtime.js: an uncaught error posts an error (init or invocation), then exits.
// The post goes on a fresh connection, so it never queues behind an in-flight GET.

let exiting = false;
let fatalId = null; // the invocation an uncaught error fails; null: INIT

function fatal(error, code) {
  if (exiting) return;
  exiting = true;
  const urlPath = fatalId === null ? INIT_ERROR_PATH : invocationPath(fatalId, 'error');
  let posted;
  try {
    posted = errorBody(error);
  } catch (_err) {
    posted = errorBody(new Error('Unable to stringify response body'));
  }
  const { body, header } = posted;
  const fresh = new Connection(false, Buffer.allocUnsafe(16 * 1024));
  fresh.send(
    `POST ${urlPath}${REQUEST_TAIL}Connection: close\r\n${JSON_CONTENT}${Buffer.byteLength(body)}\r\n${header}\r\n${body}`,
    { body: false, done: () => process.exit(code) },
  );
}

const errorCallbacks = {
  uncaughtException: (error) => fatal(error, 129),
  unhandledRejection: (error) => fatal(error, 128),
};

process.on('uncaughtException', (error) => {
  logError('Uncaught Exception', error);
  errorCallbacks.uncaughtException(error);
});

process.on('unhandledRejection', (reason, promise) => {
  const error = new UnhandledPromiseRejection(reason, promise);
  logError('Unhandled Promise Rejection', error);
  errorCallbacks.unhandledRejection(error);
});

// BeforeExitListener.js: one listener, replaced per invocation.
const BEFORE_EXIT = Symbol.for('aws.lambda.beforeExit');
const NO_OP = () => {};
const beforeExit = {
  invoke: () => globalThis[BEFORE_EXIT](),
  reset: () => (globalThis[BEFORE_EXIT] = NO_OP),
  set: (listener) => (globalThis[BEFORE_EXIT] = listener),
};
beforeExit.reset();
process.on('beforeExit', beforeExit.invoke);

// ---------------------------------------------------------------------------- user function
// UserFunction.js

const FUNCTION_EXPR = /^([^.]*)\.(.*)$/;
const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';

function moduleRootAndHandler(fullHandlerString) {
  const handlerString = path.basename(fullHandlerString);
  const moduleRoot = fullHandlerString.substring(0, fullHandlerString.indexOf(handlerString));
  return [moduleRoot, handlerString];
}

function splitHandlerString(handler) {
  const match = handler.match(FUNCTION_EXPR);
  if (!match || match.length != 3) {
    throw new MalformedHandlerName('Bad handler');
  }
  return [match[1], match[2]];
}

function resolveHandler(object, nestedProperty) {
  return nestedProperty.split('.').reduce((nested, key) => nested && nested[key], object);
}

function tryRequireFile(file, extension) {
  const p = file + (extension || '');
  return fs.existsSync(p) ? require(p) : undefined;
}

async function tryAwaitImport(file, extension) {
  const p = file + (extension || '');
  return fs.existsSync(p) ? await import(pathToFileURL(p).href) : undefined;
}

function hasFolderPackageJsonTypeModule(folder) {
  if (folder.endsWith('/node_modules')) {
    return false;
  }
  const pj = path.join(folder, '/package.json');
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj));
      if (pkg) {
        return pkg.type === 'module';
      }
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  if (folder === '/') {
    return false;
  }
  return hasFolderPackageJsonTypeModule(path.resolve(folder, '..'));
}

async function tryRequire(appRoot, moduleRoot, module) {
  const lambdaStylePath = path.resolve(appRoot, moduleRoot, module);

  const extensionless = tryRequireFile(lambdaStylePath);
  if (extensionless) {
    return extensionless;
  }

  const pjHasModule = hasFolderPackageJsonTypeModule(path.resolve(path.dirname(lambdaStylePath)));
  if (!pjHasModule) {
    const loaded = tryRequireFile(lambdaStylePath, '.js');
    if (loaded) {
      return loaded;
    }
  }

  const loaded =
    (pjHasModule && (await tryAwaitImport(lambdaStylePath, '.js'))) ||
    (await tryAwaitImport(lambdaStylePath, '.mjs')) ||
    tryRequireFile(lambdaStylePath, '.cjs');
  if (loaded) {
    return loaded;
  }

  // Node's own resolution (node_modules, NODE_PATH) relative to the task root, not this file.
  const nodeStylePath = require.resolve(module, { paths: [appRoot, moduleRoot] });
  return require(nodeStylePath);
}

async function loadUserApp(appRoot, moduleRoot, module) {
  try {
    return await tryRequire(appRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new UserCodeSyntaxError(e);
    } else if (e && e.code !== undefined && e.code === 'MODULE_NOT_FOUND') {
      throw new ImportModuleError(e);
    } else {
      throw e;
    }
  }
}

async function loadHandler(appRoot, fullHandlerString) {
  if (fullHandlerString.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const [moduleRoot, moduleAndHandler] = moduleRootAndHandler(fullHandlerString);
  const [module, handlerPath] = splitHandlerString(moduleAndHandler);
  const userApp = await loadUserApp(appRoot, moduleRoot, module);
  const handlerFunc = resolveHandler(userApp, handlerPath);
  if (!handlerFunc) {
    throw new HandlerNotFound(`${fullHandlerString} is undefined or not exported`);
  }
  if (typeof handlerFunc !== 'function') {
    throw new HandlerNotFound(`${fullHandlerString} is not a function`);
  }
  return handlerFunc;
}

function isAsyncFunction(handler) {
  try {
    return handler.constructor && handler.constructor.name === 'AsyncFunction';
  } catch (_error) {
    return false;
  }
}

function streamingMode(handler) {
  const mode = handler[HANDLER_STREAMING];
  if (mode === undefined || mode === null || mode === false) return false;
  if (mode === STREAM_RESPONSE) return STREAM_RESPONSE;
  throw new MalformedStreamingHandler('Only response streaming is supported.');
}

/** The Node major of the runtime this function is configured with (nodejs20.x -> 20). */
function runtimeMajor() {
  const match = /^AWS_Lambda_nodejs(\d+)/.exec(env.AWS_EXECUTION_ENV || '');
  return parseInt(match ? match[1] : process.versions.node, 10);
}

// -------------------------------------------------------------------- streamed responses
// awslambda.streamifyResponse / HttpResponseStream (UserFunction.js, HttpResponseStream.js).
// The stream is collected and posted as one buffered response.

class HttpResponseStream {
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType('application/vnd.awslambda.http-integration-response');
    const metadataPrelude = JSON.stringify(prelude);
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(metadataPrelude);
      write(new Uint8Array(8));
    };
    return underlyingStream;
  }
}

if (!(env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA === '1' || env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA === 'true')) {
  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === 'number') {
        handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark);
      }
      return handler;
    },
    HttpResponseStream: HttpResponseStream,
  };
}

/**
 * The response stream of a streaming invocation, posted as it is written: the head at the first
 * byte (the content type can be set until then), each write one chunk, the end a last chunk --
 * or, after an error, trailers naming it (Lambda-Runtime-Function-Error-Type / -Body base64).
 */
function liveResponseStream(id) {
  const conn = live();
  let contentType = 'application/octet-stream';
  let started = false;
  let headSent = false;
  const sendHead = () => {
    if (headSent) return;
    headSent = true;
    conn.begin(
      `${INVOCATION_POST}${encodeURIComponent(id)}/response${REQUEST_TAIL}${contentTypeLines(contentType)}` +
        'Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n' +
        'Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n',
    );
  };
  const stream = new Writable({
    write(chunk, _encoding, cb) {
      sendHead();
      if (chunk.length) {
        conn.write(`${chunk.length.toString(16)}\r\n`);
        conn.write(chunk);
        conn.write('\r\n');
      }
      cb();
    },
  });
  const firstWrite = () => {
    if (!started) {
      started = true;
      if (typeof stream._onBeforeFirstWrite === 'function') stream._onBeforeFirstWrite(write);
    }
  };
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, cb) => {
    firstWrite();
    return write(chunk, encoding, cb);
  };
  const end = stream.end.bind(stream);
  stream.end = (chunk, encoding, cb) => {
    firstWrite();
    return end(chunk, encoding, cb);
  };
  stream.setContentType = (value) => {
    if (started) throw new InvalidStreamingOperation('Cannot set content-type, too late.');
    contentType = value;
  };
  return {
    stream,
    /** The stream ended: the last chunk; `callback` once the Runtime API answered. */
    finish(callback) {
      sendHead();
      conn.finish('0\r\n\r\n', postRequest(callback));
    },
    /** Did any byte go out (then an error can only be reported in trailers)? */
    begun: () => headSent,
    /** An error after the stream began: its type and body in trailers. */
    failInTrailers(error, callback) {
      const body = toRapidResponse(error);
      const kind = headerValue(body.errorType || 'Runtime.Unknown');
      const encoded = Buffer.from(JSON.stringify(body)).toString('base64');
      conn.finish(
        `0\r\nLambda-Runtime-Function-Error-Type: ${kind}\r\nLambda-Runtime-Function-Error-Body: ${encoded}\r\n\r\n`,
        postRequest(callback),
      );
    },
  };
}

// ---------------------------------------------------------------------------------- context
// InvokeContext.js + CallbackContext.js

function parseJson(jsonString, name) {
  if (jsonString === undefined) return undefined;
  try {
    return JSON.parse(jsonString);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

/**
 * Fill the callback context with the environment's and the invocation's data: the properties of
 * the RIC's Object.assign(context, environmentData, headerData), in its order, set directly.
 */
function attachEnvironmentData(callbackContext, headers) {
  const trace = headers['lambda-runtime-trace-id'];
  if (trace) {
    env._X_AMZN_TRACE_ID = trace;
  } else {
    delete env._X_AMZN_TRACE_ID;
  }
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  const functionVersion = env.AWS_LAMBDA_FUNCTION_VERSION;
  const functionName = env.AWS_LAMBDA_FUNCTION_NAME;
  const memoryLimitInMB = env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE;
  const logGroupName = env.AWS_LAMBDA_LOG_GROUP_NAME;
  const logStreamName = env.AWS_LAMBDA_LOG_STREAM_NAME;
  const clientContext = parseJson(headers['lambda-runtime-client-context'], 'ClientContext');
  const identity = parseJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity');
  callbackContext.functionVersion = functionVersion;
  callbackContext.functionName = functionName;
  callbackContext.memoryLimitInMB = memoryLimitInMB;
  callbackContext.logGroupName = logGroupName;
  callbackContext.logStreamName = logStreamName;
  callbackContext.clientContext = clientContext;
  callbackContext.identity = identity;
  callbackContext.invokedFunctionArn = headers['lambda-runtime-invoked-function-arn'];
  callbackContext.awsRequestId = headers['lambda-runtime-aws-request-id'];
  callbackContext.tenantId = headers['lambda-runtime-aws-tenant-id'];
  callbackContext.getRemainingTimeInMillis = function () {
    return deadline - Date.now();
  };
  return callbackContext;
}

/** [callback, context with succeed/fail/done, markCompleted]; only the first call counts. */
function buildCallbackContext(id, scheduleNext) {
  const postError = (err, callback) => {
    if (exiting) return;
    logError('Invoke Error', err);
    postInvocationError(err, id, callback);
  };

  let isCompleteInvoked = false;
  const complete = (result, callback) => {
    if (isCompleteInvoked) {
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
      );
      return;
    }
    isCompleteInvoked = true;
    if (exiting) return;
    postInvocationResponse(result, id, callback);
  };

  let waitForEmptyEventLoop = true;

  const callback = function (err, result) {
    beforeExit.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else if (!waitForEmptyEventLoop) {
      complete(result, scheduleNext);
    } else {
      beforeExit.set(() => {
        setImmediate(() => {
          complete(result, scheduleNext);
        });
      });
    }
  };

  const done = (err, result) => {
    beforeExit.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else {
      complete(result, scheduleNext);
    }
  };
  const succeed = (result) => {
    done(null, result);
  };
  const fail = (err) => {
    if (err === undefined || err === null) {
      done('handled');
    } else {
      done(err, null);
    }
  };

  let finished = false;
  const onlyAllowFirstCall = (toWrap) =>
    function () {
      if (!finished) {
        toWrap.apply(null, arguments);
        finished = true;
      }
    };

  const callbackContext = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: onlyAllowFirstCall(succeed),
    fail: onlyAllowFirstCall(fail),
    done: onlyAllowFirstCall(done),
  };

  return [
    onlyAllowFirstCall(callback),
    callbackContext,
    () => {
      isCompleteInvoked = true;
    },
  ];
}

// ---------------------------------------------------------------------------------- runtime
// Runtime.js

function isPromise(obj) {
  return obj && obj.then && typeof obj.then === 'function';
}

/** An uncaught error from now on fails this invocation (and exits). */
function setErrorCallbacks(invokeId) {
  fatalId = invokeId;
}

function run(handler) {
  const isAsync = isAsyncFunction(handler);
  const streaming = streamingMode(handler);

  const scheduleIteration = () => setImmediate(handleOnce);
  const topLevelError = (err) => {
    console.log(`Unexpected Top Level Error: ${err.toString()}`);
    errorCallbacks.uncaughtException(err);
  };
  const next = nextRequest(onInvocation);
  const handleOnce = () => nextInvocation(next);

  function onInvocation(err, bodyJson, headers) {
    if (err) {
      topLevelError(err);
      return;
    }
    try {
      (streaming ? invokeStreaming : invoke)(bodyJson, headers);
    } catch (e) {
      topLevelError(e);
    }
  }

  function invoke(bodyJson, headers) {
    const invokeId = headers['lambda-runtime-aws-request-id'];
    if (!invokeId) throw new Error('invocation id is missing or invalid');
    setRequestId(invokeId);
    const [callback, callbackContext, markCompleted] = buildCallbackContext(invokeId, scheduleIteration);
    try {
      setErrorCallbacks(invokeId);
      beforeExit.set(() => {
        // The event loop emptied without a result: an async handler whose promise never
        // settled is an error; any other handler succeeded with null.
        markCompleted();
        if (exiting) return;
        if (isAsync) {
          const nodeJsExitError = new NodeJsExit();
          logError('Invoke Error', nodeJsExitError);
          postInvocationError(nodeJsExitError, invokeId, scheduleIteration);
        } else {
          postInvocationResponse(null, invokeId, scheduleIteration);
        }
      });
      const result = handler(
        JSON.parse(bodyJson),
        attachEnvironmentData(callbackContext, headers),
        callback,
      );
      if (isPromise(result)) {
        result.then(callbackContext.succeed, callbackContext.fail).catch(callbackContext.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  // Runtime.js handleOnceStreaming, buffered: the stream's bytes become the response.
  async function invokeStreaming(bodyJson, headers) {
    const invokeId = headers['lambda-runtime-aws-request-id'];
    if (!invokeId) throw new Error('invocation id is missing or invalid');
    setRequestId(invokeId);
    let waitForEmptyEventLoop = true;
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
    };
    const live = liveResponseStream(invokeId);
    const fail = (err) => {
      beforeExit.reset();
      if (exiting) return;
      logError('Invoke Error', err);
      if (live.begun()) {
        live.failInTrailers(intoError(err), scheduleIteration);
      } else {
        postInvocationError(err, invokeId, scheduleIteration);
      }
    };
    try {
      setErrorCallbacks(invokeId);
      beforeExit.set(scheduleIteration);
      const ctx = attachEnvironmentData(context, headers);
      const handlerResult = handler(JSON.parse(bodyJson), live.stream, ctx);
      if (!isPromise(handlerResult)) {
        fail('Streaming does not support non-async handlers.');
        return;
      }
      const result = await handlerResult;
      if (typeof result !== 'undefined') {
        console.warn('Streaming handlers ignore return values.');
      }
      if (!live.stream.writableEnded) {
        fail('Response stream is not finished.');
        return;
      }
      // end() was called; its 'finish' may still be a tick away
      if (!live.stream.writableFinished) await new Promise((resolve) => live.stream.once('finish', resolve));
      beforeExit.reset();
      if (exiting) return;
      const send = () => live.finish(scheduleIteration);
      if (waitForEmptyEventLoop) {
        beforeExit.set(() => setImmediate(send));
      } else {
        send();
      }
    } catch (err) {
      fail(err);
    }
  }

  scheduleIteration();
}

// ------------------------------------------------------------------------------------- main
// index.mjs

patchConsole();
try {
  const handler = await loadHandler(env.LAMBDA_TASK_ROOT || process.cwd(), env._HANDLER || '');
  const streaming = streamingMode(handler);
  const isCallback = handler.length >= 3 && !streaming;
  if (isCallback && runtimeMajor() >= 24) {
    throw new CallbackHandlerDeprecated(
      'ERROR: AWS Lambda has removed support for callback-based function handlers starting with Node.js 24. You need to modify this function to use a supported handler signature to use Node.js 24 or later. For more information see https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html.',
    );
  }
  if (
    isCallback &&
    handler.length == 3 &&
    !isAsyncFunction(handler) &&
    env.AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING === undefined
  ) {
    console.warn(
      `AWS Lambda plans to remove support for callback-based function handlers starting with Node.js 24. You will need to update this function to use an async handler to use Node.js 24 or later. For more information and to provide feedback on this change, see https://github.com/aws/aws-lambda-nodejs-runtime-interface-client/issues/137. To disable this warning, set the AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING environment variable.`,
    );
  }
  run(handler);
} catch (error) {
  // The 3.x RIC's `await run(...)` rejects here, which Node reports as an uncaught exception;
  // the RIC of nodejs24.x and later logs it as an "Init Error" (utils/runtime-setup.ts).
  logError(runtimeMajor() >= 24 ? 'Init Error' : 'Uncaught Exception', error);
  errorCallbacks.uncaughtException(error);
}
