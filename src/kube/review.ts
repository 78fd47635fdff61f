// TokenReview and SubjectAccessReview through @kubernetes/client-node's generated request factories
// (imported by path, to keep the client's other API groups out of memory; transport.ts is shared with client.ts): the
// two calls the metrics endpoint's authorizer makes with --metrics-auth kubernetes.
import {
  AuthenticationV1ApiRequestFactory,
  AuthenticationV1ApiResponseProcessor,
} from '@kubernetes/client-node/dist/gen/apis/AuthenticationV1Api.js';
import {
  AuthorizationV1ApiRequestFactory,
  AuthorizationV1ApiResponseProcessor,
} from '@kubernetes/client-node/dist/gen/apis/AuthorizationV1Api.js';
import { V1SubjectAccessReview } from '@kubernetes/client-node/dist/gen/models/V1SubjectAccessReview.js';
import { V1TokenReview } from '@kubernetes/client-node/dist/gen/models/V1TokenReview.js';
import type { AccessVerdict, Reviewer, TokenVerdict, UserInfo } from '../metrics/auth.js';
import type { ClusterAccess } from './config.js';
import { createTransport } from './transport.js';

/** A scrape usually times out after 10 s; two reviews must fit well inside it. */
export const REVIEW_TIMEOUT_MS = 4_000;

export interface KubeReviewer extends Reviewer {
  close(): void;
}

export function createKubeReviewer(access: ClusterAccess, timeoutMs = REVIEW_TIMEOUT_MS): KubeReviewer {
  const { configuration, call, close } = createTransport(access, {
    maxSockets: 4,
    timeoutMs,
    forbiddenHint:
      'the agent needs create on authentication.k8s.io tokenreviews and authorization.k8s.io subjectaccessreviews; the chart grants them with metrics.auth.mode=kubernetes',
  });
  const authn = new AuthenticationV1ApiRequestFactory(configuration);
  const authnResponse = new AuthenticationV1ApiResponseProcessor();
  const authz = new AuthorizationV1ApiRequestFactory(configuration);
  const authzResponse = new AuthorizationV1ApiResponseProcessor();

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
    close,
  };
}
