// The constant Status answer of the reference servers: the same three ready conditions the agent
// serves, encoded once.
import { StatusResponse } from '../../src/gen/runtime/v1/api.js';

export const CONSTANT_STATUS_ANSWER: Buffer = Buffer.from(
  StatusResponse.encode({
    status: {
      conditions: [
        { type: 'RuntimeReady', status: true, reason: '', message: '' },
        { type: 'NetworkReady', status: true, reason: '', message: '' },
        { type: 'NetworkConfigUpToDate', status: true, reason: '', message: '' },
      ],
    },
    info: {},
    runtimeHandlers: [],
    features: undefined,
  }).finish(),
);
