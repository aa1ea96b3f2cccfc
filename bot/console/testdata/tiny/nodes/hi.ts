export default async function run(ctx, input) {
  return { hi: input.name ?? "tiny" };
}
