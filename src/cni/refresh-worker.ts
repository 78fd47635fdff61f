// The refresher's thread: runs the synchronous scan (readdir, stat, read, parse) off the main event
// loop, so a slow or hung conf dir blocks only this thread, never the gRPC server, /metrics, the
// kube writer or libuv's thread pool (which dns.lookup shares with async fs). One scan at a time:
// the main thread never posts a second request before the first is answered.
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { Refresher } from './refresher.js';
import type { RefresherOptions } from './refresher.js';
import type { RefreshReply, RefreshRequest } from './worker-refresher.js';
import { errorText } from '../util/text.js';

// Imported anywhere but as a worker's entry (a module scan, a bundler), it does nothing.
if (parentPort !== null) serveRefreshes(parentPort);

function serveRefreshes(port: MessagePort): void {
  // Times come from the main thread's clock with each request, so a test's manual clock still rules.
  let now = 0;
  const options = workerData as Omit<RefresherOptions, 'clock' | 'onError'>;
  const refresher = new Refresher({
    ...options,
    clock: { now: () => now, setTimeout: () => ({ cancel: () => undefined }) },
  });

  // The refresher reports through a listener; the reply carries the report of this request's scan.
  const last: { report?: RefreshReply['report'] } = {};
  refresher.onRefresh((r) => {
    last.report = {
      at: r.at,
      durationSeconds: r.durationSeconds,
      ...(r.newFailure ? { newFailure: r.newFailure } : {}),
    };
  });

  function takeReport(): RefreshReply['report'] {
    const { report } = last;
    delete last.report;
    return report;
  }

  port.on('message', (request: RefreshRequest) => {
    now = request.now;
    takeReport(); // none yet: a stale one must not be sent
    const before = refresher.state;
    let reply: RefreshReply;
    try {
      const state =
        request.semantics !== undefined && request.semantics !== refresher.options.semantics
          ? refresher.useSemantics(request.semantics)
          : refresher.refresh(request.full);
      const report = takeReport();
      reply = {
        id: request.id,
        // Unchanged states are not cloned across threads: the main thread keeps its copy (and its identity).
        ...(state !== before ? { state } : {}),
        ...(report ? { report } : {}),
        stats: { ...refresher.stats },
        confDirIno: refresher.confDirIno,
        pluginDirs: refresher.pluginDirs,
      };
    } catch (error) {
      reply = {
        id: request.id,
        error: errorText(error),
        stats: { ...refresher.stats },
        confDirIno: refresher.confDirIno,
        pluginDirs: refresher.pluginDirs,
      };
    }
    port.postMessage(reply);
  });
}
