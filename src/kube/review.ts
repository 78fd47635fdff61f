// TokenReview and SubjectAccessReview through @kubernetes/client-node's generated request factories
// (imported by path, as client.ts does, to keep the client's other API groups out of memory): the
// two calls the metrics endpoint's authorizer makes with --metrics-auth kubernetes.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  AuthenticationV1ApiRequestFactory,
  AuthenticationV1ApiResponseProcessor,
} from '@kubernetes/client-node/dist/gen/apis/AuthenticationV1Api.js';
import {
  AuthorizationV1ApiRequestFactory,
  AuthorizationV1ApiResponseProcessor,
} from '@kubernetes/client-node/dist/gen/apis/AuthorizationV1Api.js';
import { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
import type { RequestContext, ResponseContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { V1SubjectAccessReview } from '@kubernetes/client-node/dist/gen/models/V1SubjectAccessReview.js';
import { V1TokenReview } from '@kubernetes/client-node/dist/gen/models/V1TokenReview.js';
import { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
import type { AccessVerdict, Reviewer, TokenVerdict, UserInfo } from '../metrics/auth.js';
import { classify } from './client.js';
import type { ClusterAccess } from './config.js';

/** A scrape usually times out after 10 s; two reviews must fit well inside it. */
export const REVIEW_TIMEOUT_MS = 4_000;

export interface KubeReviewer extends Reviewer {
  close(): void;
}

export function createKubeReviewer(access: ClusterAccess, timeoutMs = REVIEW_TIMEOUT_MS): KubeReviewer {
  const agent = access.server.startsWith('http://')
    ? new HttpAgent({ keepAlive: true, maxSockets: 4 })
    : new HttpsAgent({
        keepAlive: true,
        maxSockets: 4,
        ...(access.ca ? { ca: access.ca } : {}),
        ...(access.cert ? { cert: access.cert } : {}),
        ...(access.key ? { key: access.key } : {}),
        ...(access.tlsServerName ? { servername: access.tlsServerName } : {}),
        rejectUnauthorized: !access.skipTLSVerify,
      });
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration<Record<string, string>>(access.server, {}),
    authMethods: {
      default: {
        getName: () => 'cri-netstatus',
        applySecurityAuthentication(context: RequestContext): void {
          context.setAgent(agent);
          context.setHeaderParam('User-Agent', 'cri-netstatus');
          const token = access.token();
          if (token) context.setHeaderParam('Authorization', `Bearer ${token}`);
        },
      },
    },
  });
  const authn = new AuthenticationV1ApiRequestFactory(configuration);
  const authnResponse = new AuthenticationV1ApiResponseProcessor();
  const authz = new AuthorizationV1ApiRequestFactory(configuration);
  const authzResponse = new AuthorizationV1ApiResponseProcessor();

  async function call<T>(
    what: string,
    build: Promise<RequestContext>,
    parse: (response: ResponseContext) => Promise<{ data: T }>,
  ): Promise<T> {
    const request = await build;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    request.setSignal(controller.signal);
    try {
      const response = await configuration.httpApi.send(request).toPromise();
      return (await parse(response)).data;
    } catch (error) {
      const failure = classify(what, error, controller.signal.aborted, timeoutMs);
      if (failure.result === 'unauthorized') access.invalidateToken();
      if (failure.result === 'forbidden') {
        // classify()'s hint names the reporter's RBAC; these calls need other verbs.
        failure.message =
          failure.message.replace(/ \(the agent needs [^)]*\)$/, '') +
          ' (the agent needs create on authentication.k8s.io tokenreviews and authorization.k8s.io subjectaccessreviews; the chart grants them with metrics.auth.mode=kubernetes)';
      }
      throw failure;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async reviewToken(token: string): Promise<TokenVerdict> {
      const body = Object.assign(new V1TokenReview(), {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token },
      });
      const review = await call('create tokenreview', authn.createTokenReview(body), (r) =>
        authnResponse.createTokenReviewWithHttpInfo(r),
      );
      const status = review.status;
      const username = status?.user?.username;
      if (!status?.authenticated || !username) {
        return { authenticated: false, why: status?.error ?? '' };
      }
      return {
        authenticated: true,
        user: {
          username,
          uid: status.user?.uid,
          groups: status.user?.groups,
          extra: status.user?.extra,
        },
      };
    },
    async reviewAccess(user: UserInfo, attributes: { path: string; verb: string }): Promise<AccessVerdict> {
      const body = Object.assign(new V1SubjectAccessReview(), {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          ...(user.groups ? { groups: user.groups } : {}),
          ...(user.extra ? { extra: user.extra } : {}),
          nonResourceAttributes: { path: attributes.path, verb: attributes.verb },
        },
      });
      const review = await call('create subjectaccessreview', authz.createSubjectAccessReview(body), (r) =>
        authzResponse.createSubjectAccessReviewWithHttpInfo(r),
      );
      const status = review.status;
      // An authorizer's evaluation error with no decision is "could not decide", not "denied".
      if (!status?.allowed && !status?.denied && status?.evaluationError && !status.reason) {
        throw new Error(`subjectaccessreview: ${status.evaluationError}`);
      }
      return { allowed: status?.allowed === true, why: status?.reason ?? '' };
    },
    close: () => agent.destroy(),
  };
}
