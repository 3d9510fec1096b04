/**
 * A secret the gateway shows once (a webhook signing secret, an API key):
 * in full, with a copy button and a plain warning that it cannot be shown
 * again. Dismissed by the user, never by a timer.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import './shown-once.css';

export function ShownOnce(props: { title: string; value: string; onDone: () => void }) {
  const [copied, setCopied] = useState<'no' | 'yes' | 'failed'>('no');
  const box = useRef<HTMLElement>(null);
  useEffect(() => box.current?.focus(), [props.value]);

  async function copy() {
    try {
      await navigator.clipboard.writeText(props.value);
      setCopied('yes');
    } catch {
      // No clipboard access (an insecure origin, a denied permission): select it for a manual copy.
      const sel = window.getSelection();
      const code = box.current?.querySelector('code');
      if (sel && code) {
        const range = document.createRange();
        range.selectNodeContents(code);
        sel.removeAllRanges();
        sel.addRange(range);
      }
      setCopied('failed');
    }
  }

  return (
    <section class="shown-once" role="region" aria-label={props.title} tabIndex={-1} ref={box}>
      <h3>{props.title}</h3>
      <p class="shown-once-warning">
        <strong>Copy it now: you won't see it again.</strong> Only a hash is kept; if it is lost, make a new one.
      </p>
      <div class="shown-once-value">
        <code data-testid="shown-once-value">{props.value}</code>
        <button type="button" onClick={copy}>
          Copy
        </button>
      </div>
      <p role="status" class="shown-once-copied">
        {copied === 'yes' ? 'Copied to the clipboard.' : copied === 'failed' ? 'Could not reach the clipboard: the text is selected, copy it with Ctrl+C.' : ''}
      </p>
      <button type="button" onClick={props.onDone}>
        I have stored it
      </button>
    </section>
  );
}

/** A button that asks once more before it acts: a first press arms it, a second one runs `onConfirm`. */
export function ConfirmButton(props: {
  label: string;
  confirmLabel: string;
  onConfirm: () => void | Promise<void>;
  /** What the button acts on, for screen readers when several look alike ("Revoke key abc…"). */
  ariaLabel?: string;
  disabled?: boolean;
  class?: string;
}) {
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!armed) return;
    const timer = setTimeout(() => setArmed(false), 5000);
    return () => clearTimeout(timer);
  }, [armed]);
  return (
    <button
      type="button"
      class={`${props.class ?? ''} ${armed ? 'confirming' : ''}`.trim()}
      disabled={props.disabled}
      aria-live="polite"
      aria-label={props.ariaLabel && (armed ? `${props.confirmLabel} ${props.ariaLabel}` : props.ariaLabel)}
      onClick={() => {
        if (!armed) return setArmed(true);
        setArmed(false);
        void props.onConfirm();
      }}
    >
      {armed ? props.confirmLabel : props.label}
    </button>
  );
}

/** Runs `fn` now and then every `everyMs` (each run after the previous one ended) while mounted. */
export function usePoll(fn: () => Promise<unknown>, everyMs: number, deps: unknown[]) {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        await latest.current();
      } catch {
        // the screen shows its own errors; keep polling
      }
      if (!stopped) timer = setTimeout(tick, everyMs);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [everyMs, ...deps]);
}

/** Runs an action, shows its error (or clears the last one), then reloads the screen's data either way. */
export function actThenReload(load: () => Promise<unknown>, setError: (err: unknown) => void) {
  return async (fn: () => Promise<unknown>) => {
    try {
      await fn();
      setError(null);
    } catch (err) {
      setError(err);
    }
    await load();
  };
}
