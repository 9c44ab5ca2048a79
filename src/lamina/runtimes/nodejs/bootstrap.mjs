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
 *   - awslambda.streamifyResponse: accepted; the stream is buffered and posted as one response
 *     (what a plain Invoke of a streaming function returns on AWS).
 *
 * The RIC posts results with a blocking native client; this one uses `http` with a keep-alive
 * Agent (maxSockets 1): one request at a time on one connection.  The warm path per invoke is
 * the POST of the result, then the GET of the next event.  Fatal paths (uncaught errors, init
 * errors) post on a fresh connection so they never queue behind an in-flight GET.
 */

import http from 'node:http';
import fs from 'node:fs';
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
// RAPIDClient.js, over http with one keep-alive connection.

const API = env.AWS_LAMBDA_RUNTIME_API || '';
const API_HOST = API.slice(0, API.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
const API_PORT = parseInt(API.slice(API.lastIndexOf(':') + 1), 10);
const AGENT = new http.Agent({ keepAlive: true, maxSockets: 1 });
const BASE = '/2018-06-01/runtime';
const NEXT = { hostname: API_HOST, port: API_PORT, path: `${BASE}/invocation/next`, method: 'GET', agent: AGENT };
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

/** GET the next invocation: done(err, bodyJson, headers). */
function nextInvocation(done) {
  const req = http.request(NEXT, (res) => {
    res.setEncoding('utf8');
    let body = '';
    res.on('data', (chunk) => (body += chunk));
    res.on('end', () => {
      if (res.statusCode !== 200) {
        done(new Error(`Failed to get next invocation, HTTP ${res.statusCode}: ${body}`));
      } else {
        done(null, body, res.headers);
      }
    });
  });
  req.on('error', done);
  req.end();
}

/** POST a body (bytes or a string); then() once the answer has been read, whatever it was. */
function post(urlPath, body, contentType, extraHeaders, fresh, then) {
  const headers = { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) };
  if (extraHeaders) Object.assign(headers, extraHeaders);
  const req = http.request(
    { hostname: API_HOST, port: API_PORT, path: urlPath, method: 'POST', headers, agent: fresh ? false : AGENT },
    (res) => {
      res.on('end', () => then(null, res.statusCode));
      res.resume();
    },
  );
  req.on('error', (e) => then(e));
  req.end(body);
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

function errorBody(error) {
  const response = toRapidResponse(error);
  return [serialize(response), { [ERROR_TYPE_HEADER]: headerValue(response.errorType) }];
}

const invocationPath = (id, what) => `${BASE}/invocation/${encodeURIComponent(id)}/${what}`;

/** The result of an invocation; serialization errors throw here, synchronously, as in the RIC. */
function postInvocationResponse(result, id, callback) {
  const body = serialize(result);
  post(invocationPath(id, 'response'), body, 'application/json', null, false, () => callback());
}

function postInvocationError(error, id, callback) {
  const [body, headers] = errorBody(error);
  post(invocationPath(id, 'error'), body, 'application/json', headers, false, () => callback());
}

// ------------------------------------------------------------------------------ fatal paths
// index.mjs / Runtime.js: an uncaught error posts an error (init or invocation), then exits.

let exiting = false;

function fatal(urlPath, error, code) {
  if (exiting) return;
  exiting = true;
  let body, headers;
  try {
    [body, headers] = errorBody(error);
  } catch (_err) {
    [body, headers] = errorBody(new Error('Unable to stringify response body'));
  }
  post(urlPath, body, 'application/json', headers, true, () => process.exit(code));
}

const errorCallbacks = {
  uncaughtException: (error) => fatal(`${BASE}/init/error`, error, 129),
  unhandledRejection: (error) => fatal(`${BASE}/init/error`, error, 128),
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

function bufferedResponseStream() {
  const chunks = [];
  let contentType = 'application/octet-stream';
  let started = false;
  const stream = new Writable({
    write(chunk, _encoding, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, cb) => {
    if (!started) {
      started = true;
      if (typeof stream._onBeforeFirstWrite === 'function') stream._onBeforeFirstWrite(write);
    }
    return write(chunk, encoding, cb);
  };
  const end = stream.end.bind(stream);
  stream.end = (chunk, encoding, cb) => {
    if (!started) {
      started = true;
      if (typeof stream._onBeforeFirstWrite === 'function') stream._onBeforeFirstWrite(write);
    }
    return end(chunk, encoding, cb);
  };
  stream.setContentType = (value) => {
    if (started) throw new InvalidStreamingOperation('Cannot set content-type, too late.');
    contentType = value;
  };
  return { stream, body: () => Buffer.concat(chunks), contentType: () => contentType };
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

/** Fill the callback context with the environment's and the invocation's data. */
function attachEnvironmentData(callbackContext, headers) {
  const trace = headers['lambda-runtime-trace-id'];
  if (trace) {
    env._X_AMZN_TRACE_ID = trace;
  } else {
    delete env._X_AMZN_TRACE_ID;
  }
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  return Object.assign(
    callbackContext,
    {
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    },
    {
      clientContext: parseJson(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: headers['lambda-runtime-aws-request-id'],
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: function () {
        return deadline - Date.now();
      },
    },
  );
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

function setErrorCallbacks(invokeId) {
  errorCallbacks.uncaughtException = (error) => fatal(invocationPath(invokeId, 'error'), error, 129);
  errorCallbacks.unhandledRejection = (error) => fatal(invocationPath(invokeId, 'error'), error, 128);
}

function run(handler) {
  const isAsync = isAsyncFunction(handler);
  const streaming = streamingMode(handler);

  const scheduleIteration = () => setImmediate(handleOnce);
  const topLevelError = (err) => {
    console.log(`Unexpected Top Level Error: ${err.toString()}`);
    errorCallbacks.uncaughtException(err);
  };
  const handleOnce = () => nextInvocation(onInvocation);

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
    const buffered = bufferedResponseStream();
    const fail = (err) => {
      beforeExit.reset();
      if (exiting) return;
      logError('Invoke Error', err);
      postInvocationError(err, invokeId, scheduleIteration);
    };
    try {
      setErrorCallbacks(invokeId);
      beforeExit.set(scheduleIteration);
      const ctx = attachEnvironmentData(context, headers);
      const handlerResult = handler(JSON.parse(bodyJson), buffered.stream, ctx);
      if (!isPromise(handlerResult)) {
        fail('Streaming does not support non-async handlers.');
        return;
      }
      const result = await handlerResult;
      if (typeof result !== 'undefined') {
        console.warn('Streaming handlers ignore return values.');
      }
      if (!buffered.stream.writableFinished) {
        fail('Response stream is not finished.');
        return;
      }
      beforeExit.reset();
      if (exiting) return;
      const body = buffered.body();
      const send = () =>
        post(invocationPath(invokeId, 'response'), body, buffered.contentType(), null, false, scheduleIteration);
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
