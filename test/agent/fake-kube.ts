/**
 * The unit tests' API server: the agent's in-memory one (agent/memory-kube.ts), plus answers to
 * TokenRequest (`.../serviceaccounts/<name>/token`), which the AWS provider tests need and which
 * `render` deliberately cannot give.
 */
import { MemoryKube } from '../../agent/memory-kube.ts';

export type { Call } from '../../agent/memory-kube.ts';

export class FakeKube extends MemoryKube {
  override async create<T>(path: string, body: unknown): Promise<T> {
    if (path.endsWith('/token')) {
      this.check('POST', path, body);
      return { status: { token: `token-for-${path.split('/').at(-2)}` } } as T;
    }
    return super.create<T>(path, body);
  }
}
