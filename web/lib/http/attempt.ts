// Running a mutation for a panel: the error is kept for the panel to show (and cleared on
// success), never thrown, and the caller learns whether it worked.
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function attempt(action: () => Promise<unknown>, setError: (error: string | null) => void): Promise<boolean> {
  try {
    await action();
    setError(null);
    return true;
  } catch (e) {
    setError(errorText(e));
    return false;
  }
}
