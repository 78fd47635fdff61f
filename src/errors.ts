// Every error the agent raises on purpose, as one family: an AgentError carries a stable `code`
// (as undici's UND_ERR_* do) so callers branch on the code, never on message text. The message is
// what the operator reads, unchanged by this family: the CLI prints it as it is.

export const ERROR_CODES = {
  /** A bad flag, value or command: exit 2. */
  usage: 'CRI_NETSTATUS_USAGE',
  /** A configuration that cannot work as given (e.g. --runtime-endpoint pointing at our own socket). */
  config: 'CRI_NETSTATUS_CONFIG',
  /** The socket path is held by something we must not replace. */
  socketInUse: 'CRI_NETSTATUS_SOCKET_IN_USE',
  /** A server could not bind its address. */
  listen: 'CRI_NETSTATUS_LISTEN',
  /** The Kubernetes identity or kubeconfig is missing or unusable. */
  kubeConfig: 'CRI_NETSTATUS_KUBE_CONFIG',
  /** A Kubernetes API call failed; `result` says how. */
  kubeApi: 'CRI_NETSTATUS_KUBE_API',
  /** A call to the upstream CRI runtime failed; `grpcCode` says how. */
  upstreamCall: 'CRI_NETSTATUS_UPSTREAM_CALL',
  /** A call on our own socket is answered with a gRPC status other than OK. */
  grpcStatus: 'CRI_NETSTATUS_GRPC_STATUS',
} as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

export class AgentError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class UsageError extends AgentError {
  constructor(message: string) {
    super(ERROR_CODES.usage, message);
  }
}

export class ConfigError extends AgentError {
  constructor(message: string) {
    super(ERROR_CODES.config, message);
  }
}

export class SocketInUseError extends AgentError {
  constructor(message: string) {
    super(ERROR_CODES.socketInUse, message);
  }
}

export class ListenError extends AgentError {
  constructor(message: string, cause?: unknown) {
    super(ERROR_CODES.listen, message, { cause });
  }
}

export class KubeConfigError extends AgentError {
  constructor(message: string) {
    super(ERROR_CODES.kubeConfig, message);
  }
}

/** A gRPC status for the caller of our socket: `grpcCode` is sent, the message is the status details. */
export class GrpcError extends AgentError {
  constructor(
    readonly grpcCode: number,
    message: string,
  ) {
    super(ERROR_CODES.grpcStatus, message);
  }
}

/** A failed call to the upstream runtime, with its gRPC code and that code's name. */
export class UpstreamCallError extends AgentError {
  constructor(
    readonly grpcCode: number,
    readonly grpcCodeName: string,
    message: string,
  ) {
    super(ERROR_CODES.upstreamCall, message);
  }
}
