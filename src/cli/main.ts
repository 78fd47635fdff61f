// Command dispatch for bin/cri-netstatus.js. Returns the exit code; usage errors exit 2.
import { errorText } from '../util/text.js';
import { check, CHECK_SUMMARY } from './check.js';
import { AgentError, ERROR_CODES } from '../errors.js';
import { serve, SERVE_SUMMARY } from './serve.js';
import { status, STATUS_SUMMARY } from './status.js';
import { KUBE_CLEANUP_SUMMARY, kubeCleanup } from './kube-cleanup.js';
import { VERSION } from '../version.js';

const USAGE = `Usage: cri-netstatus <command> [flags]

Commands:
  serve     ${SERVE_SUMMARY}
  status    ${STATUS_SUMMARY}
  check     ${CHECK_SUMMARY}
  version   Print the version.
  kube-cleanup  ${KUBE_CLEANUP_SUMMARY}

Run 'cri-netstatus <command> --help' for a command's flags. Every flag can also be set as
the environment variable CRI_NETSTATUS_<FLAG_IN_CAPS>, e.g. CRI_NETSTATUS_CNI_CONF_DIR.
`;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(rest, env);
      case 'status':
        return await status(rest, env);
      case 'check':
        return await check(rest, env);
      case 'kube-cleanup':
        return await kubeCleanup(rest, env);
      case 'version':
      case '--version':
        process.stdout.write(`cri-netstatus ${VERSION}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`cri-netstatus: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof AgentError && error.code === ERROR_CODES.usage) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    process.stderr.write(`cri-netstatus ${command}: ${errorText(error)}\n`);
    return 1;
  }
}
