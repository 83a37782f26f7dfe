/**
 * Errors with a stable `code`, so callers branch on the class or code, never on message text.
 *
 * Messages name the object (namespace/name), the store, the provider and the key, then the
 * cause. They never contain a secret value or a credential: every message here may end up in a
 * log line, a Kubernetes Event, a status condition or a termination message.
 */
export class AgentError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A bad setting: names the flag or environment variable and what was expected. */
export class ConfigError extends AgentError {
  constructor(message: string) {
    super('ERR_CONFIG', message);
  }
}

/** The Kubernetes API answered with an error status. */
export class KubeApiError extends AgentError {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(
      status === 404
        ? 'ERR_KUBE_NOT_FOUND'
        : status === 403
          ? 'ERR_KUBE_FORBIDDEN'
          : 'ERR_KUBE_API',
      message,
    );
    this.status = status;
    this.reason = reason;
  }
}

/** The remote secret (or the property asked for) does not exist in the provider. */
export class NotFoundError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NOT_FOUND', message, options);
  }
}

/** One reason the injector refuses a pod: the annotation or pod field at fault, and why. */
export interface AdmissionProblem {
  /** An annotation key (`agent.external-secrets.io/mode`) or a pod field (`spec.os.name`). */
  field: string;
  /** What was wrong and what was expected. Names and annotation values only, never env values. */
  message: string;
}

/**
 * The injector refuses to inject a pod. The webhook answers `allowed: false` with this message,
 * so the user sees it in `kubectl apply` output or the workload's events.
 */
export class AdmissionError extends AgentError {
  readonly problems: readonly AdmissionProblem[];
  constructor(pod: string, problems: readonly AdmissionProblem[]) {
    const reasons = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
    super('ERR_ADMISSION', `cannot inject pod ${pod}: ${reasons}`);
    this.problems = problems;
  }
}

/** A provider call failed for a reason other than "not found": auth, network, throttling, denial. */
export class ProviderError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PROVIDER', message, options);
  }
}

/**
 * Provider data that cannot be used as asked: not JSON where JSON is needed, not base64 where a
 * decoding strategy wants base64, a key name Kubernetes does not accept.
 */
export class InvalidDataError extends AgentError {
  constructor(message: string) {
    super('ERR_INVALID_DATA', message);
  }
}

/** A target template that does not parse or does not render (missing key, failing function). */
export class TemplateError extends AgentError {
  constructor(message: string) {
    super('ERR_TEMPLATE', message);
  }
}

/** A ClusterSecretStore whose `spec.conditions` do not admit the ExternalSecret's namespace. */
export class StoreNotAllowedError extends AgentError {
  constructor(message: string) {
    super('ERR_STORE_NOT_ALLOWED', message);
  }
}

/** A manifest asks for something this agent does not implement yet; the message says what. */
export class UnsupportedError extends AgentError {
  constructor(message: string) {
    super('ERR_UNSUPPORTED', message);
  }
}

/** The target Secret cannot be written as the ExternalSecret asks (immutable, owned elsewhere). */
export class TargetConflictError extends AgentError {
  constructor(message: string, code = 'ERR_TARGET_CONFLICT') {
    super(code, message);
  }
}

/**
 * The live target Secret is immutable and the ExternalSecret would change its data without
 * asking for immutability (ESO: "could not update secret, target is immutable").
 */
export class ImmutableTargetError extends TargetConflictError {
  constructor(message: string) {
    super(message, 'ERR_TARGET_IMMUTABLE');
  }
}
