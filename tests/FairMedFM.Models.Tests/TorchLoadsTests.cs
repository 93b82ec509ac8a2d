using TorchSharp;

namespace FairMedFM.Models.Tests;

public class TorchLoadsTests
{
    // Guards the build step that marks GLIBCXX_3.4.32 weak: without it every torch call throws on Debian 12.
    [Fact]
    public void NativeTorchLoadsAndComputes()
    {
        using var a = torch.arange(6, dtype: torch.float32).reshape(2, 3);
        using var s = a.sum();
        Assert.Equal(15f, s.item<float>());
    }
}
