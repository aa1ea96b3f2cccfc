// A GitHub push payload, as much of it as the digest uses.
interface Push {
  repository?: { full_name?: string };
  pusher?: { name?: string };
  ref?: string;
  commits?: { message?: string }[];
}

export default async function run(ctx: { log: { info: (msg: string, fields?: Record<string, unknown>) => void } }, input: Push) {
  const repo = input.repository?.full_name ?? "an unknown repository";
  const who = input.pusher?.name ?? "someone";
  const branch = (input.ref ?? "").replace("refs/heads/", "") || "a branch";
  const commits = input.commits ?? [];
  const digest = `${who} pushed ${commits.length} commit${commits.length === 1 ? "" : "s"} to ${branch} of ${repo}`;
  ctx.log.info("push digested", { repo, commits: commits.length });
  return { digest, first: commits[0]?.message ?? "" };
}
